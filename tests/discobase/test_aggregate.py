"""``Table.aggregate``: counts, sums, averages, minima and maxima from memory, per group."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

import discobase


class Sale(discobase.Table):
    shop: str
    item: str
    amount: int
    price: float | None = None
    cost: decimal.Decimal = decimal.Decimal(0)
    day: dt.date = dt.date(2026, 1, 1)
    tags: list[str] = []

    class Settings:
        indexes = ["shop"]


SALES = [
    {
        "shop": "north",
        "item": "tea",
        "amount": 3,
        "price": 2.0,
        "cost": "1.10",
        "day": "2026-01-02",
    },
    {
        "shop": "north",
        "item": "cake",
        "amount": 1,
        "price": None,
        "cost": "2.20",
        "day": "2026-01-05",
    },
    {
        "shop": "south",
        "item": "tea",
        "amount": 5,
        "price": 1.5,
        "cost": "0.30",
        "day": "2026-01-03",
    },
    {
        "shop": "south",
        "item": "tea",
        "amount": 2,
        "price": 4.0,
        "cost": "0.40",
        "day": "2026-01-01",
    },
    {
        "shop": "east",
        "item": "cake",
        "amount": 7,
        "price": 3.0,
        "cost": "5.00",
        "day": "2026-01-09",
    },
]


@pytest.fixture
async def db(simcord_env, new_db):
    database = new_db()
    database.table(Sale)
    await database.open()
    await Sale.insert_many(SALES)
    yield database
    await database.close()


async def test_totals_without_group_by(db):
    result = await Sale.aggregate(sum="amount", avg=["amount", "price"], min=Sale.day, max="cost")

    assert result == {
        "group": {},
        "count": 5,
        "sum": {"amount": 18},
        "avg": {"amount": 18 / 5, "price": (2.0 + 1.5 + 4.0 + 3.0) / 4},  # None left out
        "min": {"day": dt.date(2026, 1, 1)},
        "max": {"cost": decimal.Decimal("5.00")},
    }


async def test_grouped_by_one_field_with_conditions(db):
    result = await Sale.aggregate(Sale.amount >= 2, group_by="shop", sum="amount", max="price")

    assert result == [
        {"group": {"shop": "east"}, "count": 1, "sum": {"amount": 7}, "max": {"price": 3.0}},
        {"group": {"shop": "north"}, "count": 1, "sum": {"amount": 3}, "max": {"price": 2.0}},
        {"group": {"shop": "south"}, "count": 2, "sum": {"amount": 7}, "max": {"price": 4.0}},
    ]


async def test_grouped_by_two_fields_and_keyword_conditions(db):
    result = await Sale.aggregate(group_by=["item", Sale.shop], count=True, item="tea")

    assert result == [
        {"group": {"item": "tea", "shop": "north"}, "count": 1},
        {"group": {"item": "tea", "shop": "south"}, "count": 2},
    ]


async def test_a_count_per_indexed_value_agrees_with_a_scan_and_follows_writes(db):
    by_index = await Sale.aggregate(group_by="shop")  # read from the index
    by_scan = await Sale.aggregate(group_by="shop", sum="amount")

    assert [(r["group"], r["count"]) for r in by_index] == [
        (r["group"], r["count"]) for r in by_scan
    ]
    assert [r["count"] for r in by_index] == [1, 2, 2]
    for sale in await Sale.find(shop="east"):
        await sale.delete()
    await Sale(shop="west", item="tea", amount=1).save()

    assert await Sale.aggregate(group_by="shop") == [
        {"group": {"shop": "north"}, "count": 2},
        {"group": {"shop": "south"}, "count": 2},
        {"group": {"shop": "west"}, "count": 1},
    ]


async def test_no_matching_records(db):
    assert await Sale.aggregate(shop="nowhere", sum="amount", avg="amount", min="day") == {
        "group": {},
        "count": 0,
        "sum": {"amount": 0},
        "avg": {"amount": None},
        "min": {"day": None},
    }
    assert await Sale.aggregate(shop="nowhere", group_by="item") == []


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"group_by": "colour"}, discobase.UnknownFieldError, "colour"),
        ({"sum": ["amount", "weight"]}, discobase.UnknownFieldError, "weight"),
        ({"max": "nope"}, discobase.UnknownFieldError, "nope"),
        ({"sum": "item"}, discobase.ValidationError, "sum needs a number field"),
        ({"avg": "day"}, discobase.ValidationError, "avg needs a number field"),
        ({"group_by": "tags"}, discobase.ValidationError, "group_by needs a field"),
        ({"min": "tags"}, discobase.ValidationError, "tags is json"),
        ({"count": "yes"}, discobase.ValidationError, "count must be True or False"),
    ],
)
async def test_bad_fields_are_typed_errors(simcord_env, db, options, error, message):
    before = len(simcord_env.http_requests)

    with pytest.raises(error, match=message):
        await Sale.aggregate(**options)

    assert len(simcord_env.http_requests) == before
    assert await Sale.count() == 5
