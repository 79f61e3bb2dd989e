"""Hostile input: over a thousand generated bad payloads against the commands and the library.

Every payload is refused with a clear error (an ephemeral reply naming what is wrong for a
command; a ``discobase.DiscobaseError`` for the library), the bot records no error, and the
stored records and tables are exactly as before. Payloads come from seeded generators that mix
a curated list of nasty fragments (control and zero-width characters, mentions, markdown,
deep nesting, huge strings), so every run sends the same ones.

Bugs found while writing this are pinned down by the regression tests at the end.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import simcord

import discobase
from discobot import DiscobaseBot, Settings, create_bot
from discobot.errors import UNEXPECTED_ERROR_REPLY

SEED = 1234
ADMIN_ROLE = "db-admin"
CONTENT_LIMIT = 2000
#: Bad payloads sent per surface, summed by the tests and checked in the last one.
SENT: dict[str, int] = {}
MINIMUM_PER_SURFACE = 100
MINIMUM_TOTAL = 1000

NASTY = [
    "@everyone",
    "@here",
    "<@123456789012345678>",
    "<@&123456789012345678>",
    "<#123456789012345678>",
    "**bold**",
    "__under__",
    "`tick`",
    "```",
    "||spoiler||",
    "> quote",
    "# heading",
    "[link](https://example.org)",
    "\u200b",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u202e",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\x7f",
    "\ud83d\ude00",
    "Z\u0337\u0322a\u0338l\u0337g\u0335o",
    "\u0664",
    "'",
    '"',
    "\\",
    "%s",
    "{{x}}",
    "${x}",
    "</script>",
    "'; DROP TABLE pets;--",
    "../../etc/passwd",
    "null",
    "NaN",
    "\u00e9",
    "\u4e2d\u6587",
]
PETS_FIELDS = ("name", "legs", "email", "notes", "born")


def nasty_text(rng: random.Random, pieces: int = 3) -> str:
    """A few nasty fragments glued together, with some plain letters between them."""
    return "".join(
        rng.choice(NASTY) + rng.choice(["", rng.choice(string.ascii_letters)])
        for _ in range(pieces)
    )


def huge_text(rng: random.Random, size: int) -> str:
    """About ``size`` characters of nasty fragments."""
    text = ""
    while len(text) < size:
        text += nasty_text(rng, 8)
    return text[:size]


# ------------------------------------------------------------------------------------ world


@pytest.fixture
def simcord_bot() -> DiscobaseBot:
    return create_bot(Settings(admin_role=ADMIN_ROLE))


class World:
    """A guild with the bot, a channel, an admin-role member and a ``pets`` table."""

    def __init__(self, env: simcord.Env) -> None:
        self.env = env
        self.guild = env.create_guild("hostile")
        self.channel = self.guild.create_text_channel("general")
        self.admin_role = self.guild.create_role(ADMIN_ROLE)
        self.admin = self.guild.add_member(env.create_user("ada"), roles=[self.admin_role])
        self.db: discobase.Database
        self.pets: Any

    async def setup(self) -> World:
        bot = self.env.bot
        assert isinstance(bot, DiscobaseBot)
        self.db = await bot.database(self.guild.id)
        self.pets = await self.db.create_table(
            "pets",
            {
                "name": "str",
                "legs": ("int", 4),
                "email": ("str?", None),
                "notes": ("json?", None),
                "born": ("date?", None),
            },
            primary_key="name",
            indexes=["legs"],
            unique=["email"],
        )
        await self.pets(name="rex", legs=4, email="rex@example.org", notes={"a": [1]}).save()
        await self.pets(name="tweety", legs=2, born="2020-02-29").save()
        await self.pets(name="@everyone", legs=0, notes="**loud** <@1>").save()
        return self

    async def records(self) -> dict[Any, dict[str, Any]]:
        return {record.pk: record.model_dump() for record in await self.pets.find()}

    def state(self) -> tuple[list[str], int]:
        """The tables and how many channels the guild has (a refused create makes neither)."""
        guild = self.env.bot.get_guild(self.guild.id)
        assert guild is not None
        return sorted(self.db.tables), len(guild.channels)

    def assert_no_bot_errors(self, payload: Any) -> None:
        errors = self.env.errors
        assert not errors, f"the bot failed on {payload!r}: {errors!r}"


@pytest.fixture
async def world(simcord_env: simcord.Env) -> World:
    return await World(simcord_env).setup()


def assert_clear_reply(result: Any, phrases: tuple[str, ...], payload: Any) -> str:
    """An ephemeral, plain-text reply within Discord's limits that contains one of ``phrases``."""
    assert result.ephemeral, payload
    response = result.response
    assert response is not None, f"no reply to {payload!r}"
    text = response.content
    assert text, f"an empty reply to {payload!r}"
    assert len(text) <= CONTENT_LIMIT
    assert UNEXPECTED_ERROR_REPLY not in text, f"{payload!r} crashed the command"
    assert any(phrase in text for phrase in phrases), f"{payload!r} -> {text!r}, not {phrases}"
    assert not response.embeds, payload
    assert not response.message.mention_everyone
    assert not response.message.mentions
    return text


# ------------------------------------------------------------------------------ generators

NOT_JSON = "`data` is not valid JSON"
NOT_OBJECT = "`data` must be a JSON object"
NESTED = "nested"
NOT_A_NUMBER = "is not a JSON number"
DOES_NOT_FIT = "That does not fit table `pets`"
NOT_UNIQUE = "`email` must be unique in `pets`"
NO_TABLE = "There is no table"


def _valid_record(rng: random.Random) -> dict[str, Any]:
    return {
        "name": nasty_text(rng) + str(rng.randrange(10**6)),
        "legs": rng.randrange(0, 9),
        "email": None,
        "notes": rng.choice([None, [1, "x"], {"k": nasty_text(rng)}]),
        "born": rng.choice([None, "2024-01-31"]),
    }


def _is_malformed(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


BAD_VALUES: dict[str, list[str]] = {
    "name": ["null", "5", "1.5", "true", "[]", "{}", '["rex"]', '{"a": 1}'],
    "legs": [
        '"many"',
        "1.5",
        "[]",
        "{}",
        "null",
        '""',
        '"4 legs"',
        '"\\u0664"',
        '"4\\u200b"',
        "1e400",
        "-1e400",
        '"0x10"',
        '"1,000"',
        "[4]",
        '{"n": 4}',
        '"\\u0000"',
        '"@everyone"',
        '"<@123>"',
    ],
    "email": ["5", "true", "[]", "{}", "1.5", '["a@b.c"]'],
    "born": [
        '"x"',
        '"2026-13-01"',
        '"2026-02-30"',
        '"tomorrow"',
        "true",
        "[]",
        "{}",
        '"@everyone"',
        '"2026-01-01\\u200b"',
    ],
}
ODD_FIELD_NAMES = [
    "wings",
    "",
    " ",
    "Name",
    "name ",
    " name",
    "na\u200bme",
    "@everyone",
    "<@123>",
    "**legs**",
    "__class__",
    "__dict__",
    "_discobase_key",
    "pk",
    "model_config",
    "model_fields",
    "__proto__",
    "constructor",
    "\x00",
    "\u202elegs",
    "legs\n",
    "le gs",
    "x" * 3000,
]


def insert_payloads() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """``(table, data, phrases)`` for ``/insert``: each must be refused."""
    rng = random.Random(SEED)
    curated = [
        "",
        " ",
        "{",
        "}",
        "{name: rex}",
        "{'name': 'rex'}",
        '{"name": "rex",}',
        '{"name" "rex"}',
        '{"name": "rex"',
        '{"name": rex}',
        '{"name": "re\nx"}',
        '{"name": "\\x41"}',
        '{"name": "\\ud800"',
        "\ufeff{}x",
        '{"name": "a"} trailing',
        '{"name": "a"}{"name": "b"}',
        "undefined",
        "None",
        "True",
        "{{}}",
        "@everyone",
        "<@123>",
        "**{}**",
        "```json\n{}\n```",
        "\x00",
        "\u200b{}",
        '{"legs": 0x10}',
        '{"legs": 01}',
        '{"legs": +1}',
        '{"legs": .5}',
        '{"legs": 1.}',
        '{"legs": -}',
        '{"name": "a", "legs": 4, }',
        "[" * 40,
        "{" * 40,
    ]
    for data in curated:
        assert _is_malformed(data), data
        yield "pets", data, (NOT_JSON, NESTED)
    # truncated and spliced records
    for _ in range(70):
        text = json.dumps(_valid_record(rng), ensure_ascii=rng.random() < 0.5)
        cut = rng.randrange(1, len(text) - 1)
        data = text[:cut] if rng.random() < 0.6 else text[:cut] + rng.choice(NASTY) + text[cut:]
        if _is_malformed(data):
            yield "pets", data, (NOT_JSON, NOT_A_NUMBER)
    # JSON that is not an object
    for data in ["[]", "[1, 2]", '"rex"', "42", "-0", "true", "null", '[{"name": "x"}]']:
        yield "pets", data, (NOT_OBJECT,)
    yield "pets", "1e400", (NOT_A_NUMBER,)
    for _ in range(10):
        yield "pets", json.dumps(nasty_text(rng)), (NOT_OBJECT,)
    # NaN and Infinity literals
    for constant in ["NaN", "Infinity", "-Infinity"]:
        for field in ("legs", "notes"):
            yield "pets", f'{{"name": "n", "{field}": {constant}}}', (NOT_A_NUMBER,)
    # deep nesting, as deep as 6,000 characters allow (Discord's option limit)
    for depth in (33, 34, 50, 100, 500, 999, 1000, 1001, 2000, 2980):
        yield "pets", '{"name": "deep", "notes": ' + "[" * depth + "]" * depth + "}", (NESTED,)
        dicts = min(depth, 850)
        yield "pets", '{"a": ' * dicts + "1" + "}" * dicts, (NESTED,)
        yield "pets", "[" * depth + "]" * depth, (NESTED, NOT_OBJECT)
    # wrong types, one field at a time, around otherwise valid records
    for field, values in BAD_VALUES.items():
        for value in values:
            for _ in range(2):
                record = _valid_record(rng)
                record.pop(field)
                body = json.dumps(record, ensure_ascii=rng.random() < 0.5)[1:-1]
                # numbers too large for a float are refused while parsing, before the schema
                reason = NOT_A_NUMBER if value.endswith("1e400") else DOES_NOT_FIT
                yield "pets", f'{{{body}, "{field}": {value}}}', (reason,)
    # a required field left out
    for _ in range(10):
        record = _valid_record(rng)
        del record["name"]
        yield "pets", json.dumps(record), (DOES_NOT_FIT,)
    # unknown fields
    for name in ODD_FIELD_NAMES:
        for _ in range(3):
            record = _valid_record(rng)
            record[name + rng.choice(["", "", nasty_text(rng, 1)])] = rng.choice(
                [1, "x", None, [], nasty_text(rng)]
            )
            yield "pets", json.dumps(record, ensure_ascii=rng.random() < 0.5), (DOES_NOT_FIT,)
    for _ in range(20):
        record = _valid_record(rng)
        record[nasty_text(rng, 2)] = nasty_text(rng)
        yield "pets", json.dumps(record), (DOES_NOT_FIT,)
    # huge strings with a defect: the reply stays within Discord's limits
    for size in (1000, 2000, 3000, 4000, 5000, 5800):
        record = _valid_record(rng)
        record["name"] = huge_text(rng, size)
        record["legs"] = huge_text(rng, 50)
        data = json.dumps(record, ensure_ascii=False)
        if len(data) <= 6000:
            yield "pets", data, (DOES_NOT_FIT,)
        record = {"name": "big", huge_text(rng, size): 1}
        data = json.dumps(record, ensure_ascii=False)
        if len(data) <= 6000:
            yield "pets", data, (DOES_NOT_FIT,)
    # a unique field's taken value
    for _ in range(15):
        record = _valid_record(rng)
        record["email"] = "rex@example.org"
        yield "pets", json.dumps(record), (NOT_UNIQUE,)
    # tables that do not exist
    for name in ["cats", "Pets", "pets ", " pets", "pe\u200bts", "catalog", "", *NASTY[:20]]:
        yield name, json.dumps(_valid_record(rng)), (NO_TABLE,)


NO_CONDITION = "Cannot read the condition"
NO_VALUE = "has no value after"
NULL_OPERATOR = "null only works with = and !="
OPEN_QUOTE = "is never closed"
BAD_QUOTE = "is not a valid quoted string"
NO_FIELD = "Table `pets` has no field"
NO_SORT = "Cannot sort by"
ONE_SORT = "Sort by one field"
OPERATORS = ["=", "==", "!=", "<", "<=", ">", ">=", "~"]


def _word(rng: random.Random) -> str:
    return rng.choice(string.ascii_letters) + "".join(
        rng.choice(string.ascii_letters + string.digits + "_") for _ in range(rng.randrange(8))
    )


def find_payloads() -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """``(options, phrases)`` for ``/find table:pets``: each must be refused."""
    rng = random.Random(SEED + 1)
    unreadable = [
        "legs",
        "@everyone",
        "<@123>",
        "**legs**=3",
        "\u200b=3",
        "1=1",
        "=3",
        "1legs=3",
        "l\u00e9gs=3",
        "le gs=3",
        "legs!3",
        "legs^=3",
        "legs in (1, 2)",
        "legs => 3",
        "name is rex",
        "legs between 1 and 3",
        "`legs`=3",
        "legs\u2260 3",
        "legs\uff1d3",
        "legs \u2264 3",
        "(legs=3)",
        "not legs=3",
        "legs=3; DROP TABLE pets",
    ]
    for query in unreadable:
        for joiner in ("", ", name=rex", " and legs=2"):
            yield {"query": query + joiner}, (NO_CONDITION, NO_FIELD, DOES_NOT_FIT)
    for _ in range(40):
        query = nasty_text(rng, 2) + rng.choice(["", "x"])
        yield {"query": query}, (NO_CONDITION, OPEN_QUOTE, BAD_QUOTE, NO_VALUE, NULL_OPERATOR)
    for field in PETS_FIELDS:
        for operator in OPERATORS:
            yield {"query": f"{field}{operator}"}, (NO_VALUE,)
            yield {"query": f"{field} {operator}   , legs=2"}, (NO_VALUE,)
        for operator in ("<", "<=", ">", ">=", "~"):
            yield {"query": f"{field}{operator}null"}, (NULL_OPERATOR,)
    for query in ['name="rex', "name='rex", 'name="a, legs=2', 'name=rex"', "email=\"'"]:
        yield {"query": query}, (OPEN_QUOTE,)
    for query in ['name="\\x41"', 'name="\\u12"', 'name="a\\"', 'name="\t"']:
        yield {"query": query}, (BAD_QUOTE, OPEN_QUOTE)
    # fields the table does not have
    for _ in range(60):
        name = rng.choice(
            [_word(rng), "pk", "_discobase_key", "model_config", "Name", "LEGS", "__class__"]
        )
        if name in PETS_FIELDS:
            continue
        value = rng.choice(["3", "rex", "null", '"a, b"', nasty_text(rng, 1)])
        yield (
            {"query": f"{name}{rng.choice(OPERATORS)}{value}"},
            (
                NO_FIELD,
                NULL_OPERATOR,
                OPEN_QUOTE,
                BAD_QUOTE,
                NO_VALUE,
            ),
        )
    # values of the wrong type (odd operators end up here: legs=>3 compares legs with ">3")
    for _ in range(60):
        value = rng.choice(
            [
                "many",
                "1.5",
                "1e400",
                "4 legs",
                "\u0664",
                "4\u200b",
                "0x10",
                ">3",
                "<3",
                "3 or legs=4",
                "[1]",
                "{}",
                "true",
                nasty_text(rng, 1) + "x",
            ]
        )
        operator = rng.choice([op for op in OPERATORS if op != "~"])
        yield {"query": f"legs{operator}{value}"}, (DOES_NOT_FIT,)
    for value in ["x", "2026-13-01", "2026-02-30", "tomorrow", "@everyone", "01/02/2026", "true"]:
        for operator in ("=", "!=", "<", ">="):
            yield {"query": f"born{operator}{value}"}, (DOES_NOT_FIT,)
    # sort orders
    for sort in ["wings", "-", "--", "-wings", "Legs", "legs sideways", "- legs", "legs desc now"]:
        yield {"sort": sort}, (NO_SORT, ONE_SORT)
    for _ in range(15):
        yield {"sort": nasty_text(rng, 1) + "x"}, (NO_SORT, ONE_SORT)
    # tables that do not exist
    for name in ["cats", "Pets", "pe\u200bts", "catalog", *NASTY[:16]]:
        yield {"table": name, "query": "legs>=0"}, (NO_TABLE,)


NOT_NAME_TYPE = "is not `name:type`"
UNKNOWN_TYPE = "has unknown type"
TWICE = "appears twice"
NOT_DEFINITION = "That table definition does not work"
EXISTS = "exists already"
RESERVED = "is reserved"
TOO_LONG = "too long for one catalog message"
#: Field names that would shadow a record's verbs, pydantic's methods or find()'s keywords.
RESERVED_FIELDS = [
    "save", "insert", "update", "delete", "insert_many", "get", "find", "find_one",
    "find_unique", "count", "all", "Settings", "self", "cls", "limit", "offset", "order_by",
    "expressions", "equals", "copy", "json", "dict", "schema", "validate", "construct",
    "parse_obj", "model_dump", "model_validate",
]  # fmt: skip
#: A field list whose schema cannot fit one catalog message (2,000 characters).
TOO_LONG_FIELDS = {f"a_rather_long_descriptive_field_name_{i:03d}": "str?" for i in range(60)}
NO_FIELDS = "Give at least one field"
NULL_DEFAULT = "may default to null"
NOT_A_FIELD = "which is not a field"
BAD_VALUE = " is not "


def create_payloads() -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """Options for ``/table create``: each must be refused."""
    rng = random.Random(SEED + 2)
    good_fields = "title:str, count:int=0"
    # odd table names
    names = [
        "Pets",
        "PETS",
        "1pets",
        "_pets",
        "my-table",
        "my table",
        "my.table",
        "p\u00e9ts",
        "\u4e2d\u6587",
        "pets\u200b",
        "\u200bpets",
        "pets\n",
        "a" * 64,
        "a" * 100,
        "catalog",
        "pets",
        "@everyone",
        "<@123>",
        "**bold**",
        "../pets",
    ]
    for name in names:
        yield {"name": name, "fields": good_fields}, (NOT_DEFINITION, EXISTS)
    for _ in range(40):
        name = rng.choice(string.ascii_lowercase) + nasty_text(rng, 2)
        yield {"name": name[:100], "fields": good_fields}, (NOT_DEFINITION,)
    for _ in range(20):
        base = _word(rng).lower()
        yield {"name": base.upper() + "X", "fields": good_fields}, (NOT_DEFINITION,)
    # field lists that do not parse
    unparsable = [
        "title",
        "title:",
        ":str",
        "1a:str",
        "a-b:str",
        "a b:str",
        "@everyone:str",
        "<@123>:str",
        "**a**:str",
        "\u00e9:str",
        "a\u200b:str",
        "title:str:int",
        "title=str",
        "title str",
        "title:str[]",
        "title:?",
    ]
    for fields in unparsable:
        yield {"name": "newtable", "fields": fields}, (NOT_NAME_TYPE,)
        yield {"name": "newtable", "fields": f"ok:int, {fields}"}, (NOT_NAME_TYPE,)
    for fields in [",", " , , ", "\u200b"]:
        yield {"name": "newtable", "fields": fields}, (NO_FIELDS, NOT_NAME_TYPE)
    for type_name in ["string", "integer", "uuid", "decimal", "list", "dict", "any", "text", "x"]:
        yield {"name": "newtable", "fields": f"title:{type_name}"}, (UNKNOWN_TYPE,)
        yield {"name": "newtable", "fields": f"id:int, title:{type_name}?"}, (UNKNOWN_TYPE,)
    for fields in ["a:str, a:int", "a:str, b:int, a:str", "a:int=1, a:int=1", "a:str?, a:str"]:
        yield {"name": "newtable", "fields": fields}, (TWICE,)
    # names the library reserves or refuses
    for name in ["pk", "model_config", "model_fields", "model_x", "_x", "_", "__class__", "a" * 64]:
        yield {"name": "newtable", "fields": f"{name}:str"}, (NOT_DEFINITION,)
    for name in RESERVED_FIELDS:
        yield {"name": "newtable", "fields": f"title:str, {name}:int"}, (RESERVED,)
    too_long = ", ".join(f"{name}:str?" for name in TOO_LONG_FIELDS)
    yield {"name": "newtable", "fields": too_long}, (TOO_LONG,)
    yield (
        {
            "name": "newtable",
            "fields": too_long,
            "indexes": "a_rather_long_descriptive_field_name_000",
        },
        (TOO_LONG,),
    )
    # defaults that do not fit
    bad_defaults = [
        "n:int=abc",
        "n:int=1.5",
        "n:int=1e400",
        "n:int=@everyone",
        "n:float=abc",
        "n:float=1,5",
        "b:bool=maybe",
        "b:bool=2",
        "d:date=2026-13-01",
        "d:date=2026-02-30",
        "d:date=today",
        "t:datetime=yesterday",
        "t:datetime=2026-01-01T25:00",
        "j:json={",
        "j:json=[1",
        "j:json=NaN",
        "j:json=Infinity",
        "j:json={'a': 1}",
        "j:json=" + "[" * 40 + "]" * 40,
        "j:json=" + "[" * 3000,
        'n:str="unclosed',
        "n:int=null",
        "n:str=none",
        'n:str="\\x"',
    ]
    for fields in bad_defaults:
        yield {"name": "newtable", "fields": fields}, (BAD_VALUE, NULL_DEFAULT, OPEN_QUOTE, NESTED)
    # keys, indexes and unique fields that do not work
    fields = "id:int, title:str, score:float, tags:json, ok:bool, maybe:str?"
    for options in [
        {"primary_key": "wings"},
        {"primary_key": "id, title"},
        {"primary_key": "@everyone"},
        {"indexes": "wings"},
        {"indexes": "id, id"},
        {"unique": "title, wings"},
        {"unique": "<@123>"},
    ]:
        yield {"name": "newtable", "fields": fields, **options}, (NOT_A_FIELD, "twice", "one field")
    for options in [
        {"primary_key": "score"},
        {"primary_key": "tags"},
        {"primary_key": "ok"},
        {"primary_key": "maybe"},
        {"indexes": "tags"},
        {"unique": "tags"},
    ]:
        yield {"name": "newtable", "fields": fields, **options}, (NOT_DEFINITION,)


def library_records() -> Iterator[dict[str, Any]]:
    """Bad records for ``Table(**payload)`` / ``model_validate`` and ``save``."""
    rng = random.Random(SEED + 3)
    wrong = {
        "name": [None, 5, 1.5, True, [], {}, ["rex"], object(), Decimal("1")],
        "legs": [
            "many",
            1.5,
            [],
            {},
            None,
            "",
            "4 legs",
            "\u0664",
            "4\u200b",
            float("inf"),
            float("nan"),
            object(),
            Decimal("1.5"),
            "@everyone",
            [4],
            {"n": 4},
        ],
        "email": [5, True, [], {}, 1.5, object(), ["a@b.c"]],
        "born": ["x", "2026-13-01", "2026-02-30", "tomorrow", True, [], {}, "@everyone"],
    }
    for field, values in wrong.items():
        for value in values:
            for _ in range(3):
                record = _valid_record(rng)
                record[field] = value
                yield record
    for _ in range(10):
        record = _valid_record(rng)
        del record["name"]
        yield record
    for name in [*ODD_FIELD_NAMES, "_private", "model_dump", "save", "find"]:
        for _ in range(2):
            record = _valid_record(rng)
            record[name] = rng.choice([1, "x", None, nasty_text(rng)])
            yield record
    for _ in range(20):
        record = _valid_record(rng)
        record[nasty_text(rng, 2)] = 1
        yield record


def library_criteria() -> Iterator[dict[str, Any]]:
    """Bad ``find(**criteria)``: fields the table does not have, values of the wrong type."""
    rng = random.Random(SEED + 4)
    for name in [*ODD_FIELD_NAMES, "save", "find", "model_dump"]:
        if name not in PETS_FIELDS:
            yield {name: rng.choice([1, "x", None])}
    for _ in range(40):
        name = _word(rng)
        if name not in PETS_FIELDS:
            yield {name: 1, "legs": 4}
    for _ in range(20):
        yield {nasty_text(rng, 2): "x"}
    wrong = {
        "legs": ["many", 1.5, "1.5", [], {}, object(), "\u0664", "4\u200b", float("nan"), "x"],
        "name": [5, 1.5, [], {}, object(), True],
        "email": [5, [], {}, True],
        "born": ["x", "2026-13-01", "2026-02-30", [], {}, "@everyone", True],
    }
    for field, values in wrong.items():
        for value in values:
            yield {field: value}
            yield {field: value, "legs": 4} if field != "legs" else {field: value, "name": "rex"}


def library_tables() -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    """Bad ``db.create_table(name, fields, **options)``."""
    rng = random.Random(SEED + 5)
    good: dict[str, Any] = {"title": "str", "count": ("int", 0)}
    for name in [
        None,
        5,
        b"table",
        ["t"],
        "",
        "Pets",
        "1t",
        "_t",
        "t-1",
        "t 1",
        "t\u200b",
        "\u00e9t",
        "a" * 64,
        "catalog",
        "pets",
        "@everyone",
    ]:
        yield name, good, {}
    for _ in range(30):
        yield rng.choice(string.ascii_lowercase) + nasty_text(rng, 2), good, {}
    for fields in [None, [], "title:str", [("title", "str")], 5, {}, set()]:
        yield "newtable", fields, {}
    for spec in [
        "string",
        "int?!",
        "",
        "?",
        "INT",
        "list",
        None,
        5,
        object(),
        list[int],
        ("int",),
        ("int", 1, 2),
        ("int", "many"),
        ("int", 1.5),
        ("date", "2026-13-01"),
        ("bool", "maybe"),
        ("str", 5),
        ("float", "x"),
        ("datetime", "yesterday"),
    ]:
        yield "newtable", {"title": "str", "other": spec}, {}
    for field_name in [
        "pk",
        "model_config",
        "model_x",
        "_x",
        "1a",
        "a-b",
        "a b",
        "",
        "@everyone",
        "\u200b",
        "a" * 64,
        5,
        None,
    ]:
        yield "newtable", {"title": "str", field_name: "int"}, {}
    for field_name in RESERVED_FIELDS:
        yield "newtable", {"title": "str", field_name: "int"}, {}
    for shards in (1, 4, 16):
        yield "newtable", TOO_LONG_FIELDS, {"shards": shards}
    fields: dict[str, Any] = {"id": "int", "title": "str", "tags": "json", "score": "float"}
    for options in [
        {"primary_key": "wings"},
        {"primary_key": "tags"},
        {"primary_key": "score"},
        {"primary_key": 5},
        {"indexes": ["wings"]},
        {"indexes": ["tags"]},
        {"unique": ["wings"]},
        {"unique": ["tags"]},
        {"shards": 0},
        {"shards": 17},
        {"shards": -1},
        {"shards": "2"},
    ]:
        yield "newtable", fields, options


# ------------------------------------------------------------------------------- commands


async def test_insert_refuses_generated_bad_data_and_writes_nothing(world: World) -> None:
    before = await world.records()
    sent = 0
    for table, data, phrases in insert_payloads():
        assert len(data) <= 6000, "Discord itself refuses longer options"
        result = await world.admin.slash(world.channel, "insert", table=table, data=data)
        await world.env.settle()
        text = assert_clear_reply(result, phrases, data)
        assert "Inserted" not in text
        assert await world.records() == before, f"{data!r} changed the stored records"
        world.assert_no_bot_errors(data)
        sent += 1
    SENT["/insert"] = sent
    assert sent >= 300


async def test_find_explains_generated_bad_queries(world: World) -> None:
    before = await world.records()
    sent = 0
    for options, phrases in find_payloads():
        table = options.pop("table", "pets")
        result = await world.admin.slash(world.channel, "find", table=table, **options)
        await world.env.settle()
        assert_clear_reply(result, phrases, options)
        world.assert_no_bot_errors(options)
        sent += 1
    assert await world.records() == before
    SENT["/find"] = sent
    assert sent >= 250


async def test_table_create_refuses_generated_bad_definitions(world: World) -> None:
    before = world.state()
    sent = 0
    for options, phrases in create_payloads():
        result = await world.admin.slash(world.channel, "table create", **options)
        await world.env.settle()
        text = assert_clear_reply(result, phrases, options)
        assert "Created table" not in text
        assert world.state() == before, f"{options!r} created something"
        world.assert_no_bot_errors(options)
        sent += 1
    SENT["/table create"] = sent
    assert sent >= 130


# -------------------------------------------------------------------------------- library


async def test_library_save_refuses_generated_bad_records(world: World) -> None:
    before = await world.records()
    sent = 0
    for position, payload in enumerate(library_records()):
        with pytest.raises(discobase.ValidationError) as raised:
            record = world.pets(**payload) if position % 2 else world.pets.model_validate(payload)
            await record.save()
        assert raised.value.table == "pets"
        assert raised.value.errors, payload
        sent += 1
    for _ in range(15):
        taken = world.pets(name=f"copy{sent}", email="rex@example.org")
        with pytest.raises(discobase.UniqueViolationError):
            await taken.save()
        sent += 1
    await world.env.settle()
    assert await world.records() == before
    world.assert_no_bot_errors("library save")
    SENT["Table save"] = sent
    assert sent >= 200


async def test_library_refuses_a_record_over_the_attachment_limit(world: World) -> None:
    before = await world.records()
    for size in (world.db.size_limit + 1, world.db.size_limit * 2):
        record = world.pets(name="huge", notes="\u200b" * (size // 3 + 1))
        with pytest.raises(discobase.RecordTooLargeError) as raised:
            await record.save()
        assert raised.value.size > raised.value.limit
    assert await world.records() == before
    SENT["Table save (too large)"] = 2


async def test_library_find_refuses_generated_bad_criteria(world: World) -> None:
    before = await world.records()
    sent = 0
    for criteria in library_criteria():
        bad_field = next((name for name in criteria if name not in PETS_FIELDS), None)
        expected = (
            discobase.UnknownFieldError if bad_field is not None else discobase.ValidationError
        )
        with pytest.raises(expected) as raised:
            await world.pets.find(**criteria)
        if bad_field is not None:
            assert raised.value.field == bad_field
        sent += 1
    assert await world.records() == before
    SENT["Table.find"] = sent
    assert sent >= 130


async def test_library_create_table_refuses_generated_bad_definitions(world: World) -> None:
    before = world.state()
    sent = 0
    for name, fields, options in library_tables():
        expected = discobase.TableExistsError if name == "pets" else discobase.SchemaError
        with pytest.raises(expected):
            await world.db.create_table(name, fields, **options)
        assert world.state() == before, f"{name!r} {fields!r} {options!r} created something"
        sent += 1
    await world.env.settle()
    world.assert_no_bot_errors("create_table")
    SENT["Database.create_table"] = sent
    assert sent >= 90


# ------------------------------------------------------------------------------- mentions


async def test_stored_mentions_and_markdown_never_ping(world: World) -> None:
    admin_id = world.admin.id
    role_id = world.admin_role.id
    loud = f"@everyone @here <@{admin_id}> <@!{admin_id}> <@&{role_id}> **b** ||s||"
    # SimCord keeps who a message notifies (ping_*) apart from the mentions it renders;
    # it has no public accessor, so the backend messages are read. A control: the same text
    # from a member notifies, so the checks below can fail.
    control = await world.admin.send(world.channel, loud)
    backend = world.env.backend
    assert backend.get_message(world.channel.id, control.id).ping_user_ids == [admin_id]

    await world.pets(name=loud, legs=7, notes={"@everyone": f"<@{admin_id}>"}).save()
    found = await world.admin.slash(world.channel, "find", table="pets", query="legs=7")
    inserted = await world.admin.slash(
        world.channel,
        "insert",
        table="pets",
        data=json.dumps({"name": "x" + loud, "legs": 8, "email": loud}),
    )
    await world.env.settle()

    for result in (found, inserted):
        assert result.ephemeral
        stored = backend.get_message(world.channel.id, result.response.id)
        assert not stored.mention_everyone
        assert stored.ping_user_ids == []
        assert stored.ping_role_ids == []
        assert not result.response.message.mention_everyone
    shown = found.response.embeds[0].fields
    # stored text is shown inside inline code only, where Discord renders nothing
    text = inserted.response.content + "".join(f.name + f.value for f in shown)
    assert "@everyone" in text
    outside_code = re.sub(r"`[^`\n]*`", "", text)
    assert "`" not in outside_code
    assert "@everyone" not in outside_code
    assert "<@" not in outside_code
    assert "**b**" not in outside_code
    world.assert_no_bot_errors(loud)


# ------------------------------------------------------------------------- regression tests


async def test_insert_refuses_a_key_that_exists(world: World) -> None:
    before = await world.records()
    result = await world.admin.slash(world.channel, "insert", table="pets", data='{"name": "rex"}')

    assert result.ephemeral
    assert "Inserted" not in result.response.content
    assert await world.records() == before


async def test_insert_refuses_numbers_that_overflow_to_infinity(world: World) -> None:
    before = await world.records()
    result = await world.admin.slash(
        world.channel, "insert", table="pets", data='{"name": "big", "notes": 1e400}'
    )

    assert NOT_A_NUMBER in result.response.content
    assert await world.records() == before


def _deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


async def test_library_save_refuses_deep_nesting_with_a_validation_error(world: World) -> None:
    before = await world.records()
    with pytest.raises(discobase.ValidationError):
        await world.pets.model_validate({"name": "deep", "notes": _deep(10_000)}).save()
    assert await world.records() == before


async def test_library_refuses_values_json_cannot_hold(world: World) -> None:
    before = await world.records()
    with pytest.raises(discobase.ValidationError):
        await world.pets(name="obj", notes=object()).save()
    assert await world.records() == before


async def test_library_create_table_refuses_a_default_json_cannot_hold(world: World) -> None:
    before = world.state()
    with pytest.raises(discobase.SchemaError):
        await world.db.create_table("newtable", {"tags": ("json", {1, 2})})
    assert world.state() == before


BIG_INT = "1" + "0" * 4300  # 4,301 digits: over Python's limit for ints written as text
TOO_MANY_DIGITS = "digits"


async def test_insert_and_update_refuse_ints_over_the_digit_limit(world: World) -> None:
    before = await world.records()
    payloads = [
        ("insert", {"data": f'{{"name": "big", "legs": {BIG_INT}}}'}),
        ("insert", {"data": f'{{"name": "big", "notes": [{BIG_INT}]}}'}),
        ("insert", {"data": f'{{"name": "big", "notes": {{"n": -{BIG_INT}}}}}'}),
        ("update", {"key": "rex", "changes": f'{{"legs": {BIG_INT}}}'}),
        ("update", {"key": "rex", "changes": f'{{"notes": [{BIG_INT}]}}'}),
    ]
    for command, options in payloads:
        result = await world.admin.slash(world.channel, command, table="pets", **options)
        await world.env.settle()
        assert_clear_reply(result, (TOO_MANY_DIGITS,), options)
        world.assert_no_bot_errors(options)
    assert await world.records() == before


async def test_library_refuses_ints_over_the_digit_limit_and_keeps_the_largest(
    world: World,
) -> None:
    before = await world.records()
    for record in (
        world.pets(name="big", legs=10**4300),
        world.pets(name="big", notes={"n": [-(10**4300)]}),
    ):
        with pytest.raises(discobase.ValidationError, match=TOO_MANY_DIGITS):
            await record.save()
    assert await world.records() == before
    largest = int("9" * 4300)
    await world.pets(name="largest", legs=largest).save()
    assert (await world.pets.get("largest")).legs == largest


async def test_nan_is_refused_in_float_fields(world: World) -> None:
    scores = await world.db.create_table(
        "scores", {"who": "str", "score": "float"}, primary_key="who", indexes=["score"]
    )
    for who, score in (("a", 1.5), ("b", -2.0), ("c", float("inf"))):
        await scores(who=who, score=score).save()
    for nan in (float("nan"), -float("nan"), float("inf") - float("inf")):
        with pytest.raises(discobase.ValidationError, match="NaN"):
            await scores(who="nan", score=nan).save()
        with pytest.raises(discobase.ValidationError, match="NaN"):
            await (await scores.get("a")).update(score=nan)
    for data in ('{"who": "n", "score": NaN}', '{"who": "n", "score": [NaN]}'):
        result = await world.admin.slash(world.channel, "insert", table="scores", data=data)
        assert_clear_reply(result, (NOT_A_NUMBER,), data)
    assert [s.who for s in await scores.find(scores.score > -10.0)] == ["a", "b", "c"]
    assert [s.who for s in await scores.find(order_by="score")] == ["b", "a", "c"]


async def test_find_sorts_mixed_naive_and_aware_datetimes(world: World) -> None:
    events = await world.db.create_table(
        "events", {"title": "str", "at": "datetime", "extra": "json?"}, primary_key="title"
    )
    await events(title="aware", at="2026-01-01T00:00:00+00:00", extra=1).save()
    await events(title="naive", at="2026-06-01T00:00:00", extra="x").save()
    result = await world.admin.slash(world.channel, "find", table="events", sort="at")
    await world.env.settle()
    world.assert_no_bot_errors("sort=at")
    titles = [field.name for field in result.response.embeds[0].fields]
    assert titles == sorted(titles, key=lambda t: ("aware" in t, t)), titles
    mixed = await world.admin.slash(world.channel, "find", table="events", sort="extra")
    await world.env.settle()
    assert_clear_reply(mixed, ("cannot order by extra",), "sort=extra")
    world.assert_no_bot_errors("sort=extra")


# ---------------------------------------------------------------------------------- total


def test_at_least_a_thousand_bad_payloads_are_generated() -> None:
    """The generators above (what the tests send) hold over a thousand bad payloads."""
    counts = {
        "/insert": sum(1 for _ in insert_payloads()),
        "/find": sum(1 for _ in find_payloads()),
        "/table create": sum(1 for _ in create_payloads()),
        "Table save": sum(1 for _ in library_records()) + 15 + 2,
        "Table.find": sum(1 for _ in library_criteria()),
        "Database.create_table": sum(1 for _ in library_tables()),
    }
    for surface, count in SENT.items():
        assert counts.get(surface.split(" (")[0], 0) >= count or surface.endswith(")")
    assert all(count >= MINIMUM_PER_SURFACE - 10 for count in counts.values()), counts
    assert sum(counts.values()) >= MINIMUM_TOTAL, counts
