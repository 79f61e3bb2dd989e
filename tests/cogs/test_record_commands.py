"""``/insert``, ``/find``, ``/count``, ``/update``, ``/delete`` and ``/export``."""

from __future__ import annotations

import asyncio
import csv
import gc
import gzip
import io
import json
import random
import re
import time
from typing import Any

import pytest
import simcord
from cog_world import World

import discobase


async def records_of(pets: Any) -> dict[str, dict[str, Any]]:
    return {record.name: record.model_dump() for record in await pets.find()}


async def test_insert_json_saves_a_record_the_library_finds(world: World, pets: Any) -> None:
    result = await world.admin.slash(
        world.channel, "insert", table="pets", data='{"name": "nemo", "legs": 0}'
    )

    assert result.ephemeral
    assert result.response.content == (
        "Inserted into `pets` with key `nemo`:\n**legs**: `0`\n**email**: `null`"
    )
    found = await pets.find(name="nemo")
    assert [(record.name, record.legs, record.email) for record in found] == [("nemo", 0, None)]


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ("{name: nemo}", "`data` is not valid JSON"),
        ("[1, 2]", "`data` must be a JSON object"),
        ('{"name": "nemo", "legs": "many"}', "That does not fit table `pets`"),
        ('{"legs": 3}', "`name`"),
        ('{"name": "nemo", "email": "rex@example.org"}', "`email` must be unique in `pets`"),
    ],
)
async def test_insert_refuses_bad_data_and_writes_nothing(
    world: World, pets: Any, data: str, complaint: str
) -> None:
    before = await records_of(pets)
    result = await world.admin.slash(world.channel, "insert", table="pets", data=data)

    assert result.ephemeral
    assert complaint in result.response.content
    assert await records_of(pets) == before


async def test_insert_into_an_unknown_table(world: World, pets: Any) -> None:
    result = await world.admin.slash(world.channel, "insert", table="cats", data='{"a": 1}')
    assert result.response.content.startswith("There is no table `cats`")


async def test_insert_form_for_small_tables(world: World, pets: Any) -> None:
    shown = await world.admin.slash(world.channel, "insert", table="pets")

    assert shown.modal is not None
    inputs = [component["components"][0] for component in shown.modal["components"]]
    assert [item["label"] for item in inputs] == [
        "name (str)",
        "legs (int)",
        "email (str, optional)",
    ]
    assert [item["required"] for item in inputs] == [True, False, False]

    by_label = {item["label"]: item["custom_id"] for item in inputs}
    submitted = await world.admin.submit_modal(
        shown, {by_label["name (str)"]: "dory", by_label["legs (int)"]: "0"}
    )

    assert submitted.response.content.startswith("Inserted into `pets` with key `dory`:")
    assert (await pets.get("dory")).legs == 0


async def test_insert_form_refuses_a_wrong_type(world: World, pets: Any) -> None:
    shown = await world.admin.slash(world.channel, "insert", table="pets")
    inputs = [component["components"][0] for component in shown.modal["components"]]
    values = {inputs[0]["custom_id"]: "dory", inputs[1]["custom_id"]: "lots"}

    submitted = await world.admin.submit_modal(shown, values)

    assert "Field `legs`: `lots` is not a whole number" in submitted.response.content
    assert "dory" not in await records_of(pets)


async def test_insert_form_is_refused_for_wide_tables(world: World) -> None:
    database = await world.database()
    await database.create_table("wide", {f"f{i}": "str?" for i in range(6)})

    result = await world.admin.slash(world.channel, "insert", table="wide")

    assert result.modal is None
    assert "has 6 fields and a form holds 5" in result.response.content


async def test_find_types_query_values_by_the_schema(world: World, pets: Any) -> None:
    result = await world.reader.slash(world.channel, "find", table="pets", query="legs>=3")

    assert result.ephemeral
    embed = result.response.embeds[0]
    assert embed.title == "pets: records 1-1 of 1"
    assert [field.name for field in embed.fields] == ["name: `rex`"]
    assert embed.fields[0].value == "**legs**: `4`\n**email**: `rex@example.org`"


async def test_find_shows_records_saved_by_the_library(world: World, pets: Any) -> None:
    await pets(name="nemo", legs=0, email="nemo@sea.org").save()

    result = await world.reader.slash(
        world.channel, "find", table="pets", query="email~sea, legs!=2", sort="-legs"
    )

    assert [field.name for field in result.response.embeds[0].fields] == ["name: `nemo`"]


async def test_find_sorts_limits_and_pages(world: World, pets: Any) -> None:
    for number in range(12):
        await pets(name=f"pet{number:02}", legs=number).save()

    result = await world.admin.slash(
        world.channel, "find", table="pets", query="name~pet", sort="-legs", limit=11
    )

    first = result.response.embeds[0]
    assert first.title == "pets: records 1-5 of 12"
    assert [field.name for field in first.fields][:2] == ["name: `pet11`", "name: `pet10`"]
    await world.admin.click(result.response, label="Next")
    await world.admin.click(result.response, label="Next")
    last = result.response.embeds[0]
    assert last.title == "pets: records 11-11 of 12"
    assert [field.name for field in last.fields] == ["name: `pet01`"]
    await world.admin.click(result.response, label="Previous")
    assert result.response.embeds[0].title == "pets: records 6-10 of 12"


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"query": "legs"}, "Cannot read the condition `legs`"),
        ({"query": "wings=2"}, "Table `pets` has no field `wings`"),
        ({"query": "legs>=many"}, "That does not fit table `pets`"),
        ({"sort": "wings"}, "Cannot sort by `wings`"),
    ],
)
async def test_find_explains_bad_queries(
    world: World, pets: Any, options: dict[str, str], complaint: str
) -> None:
    result = await world.reader.slash(world.channel, "find", table="pets", **options)

    assert result.ephemeral
    assert complaint in result.response.content
    assert not result.response.embeds


async def test_find_without_matches(world: World, pets: Any) -> None:
    result = await world.reader.slash(world.channel, "find", table="pets", query="legs>100")
    assert result.response.content == "No records in `pets` where `legs>100`."


async def test_count_with_and_without_a_query(world: World, pets: Any) -> None:
    everything = await world.reader.slash(world.channel, "count", table="pets")
    some = await world.reader.slash(world.channel, "count", table="pets", query="legs=2")

    assert everything.response.content == "`pets` has 2 records."
    assert some.response.content == "`pets` has 1 record where `legs=2`."


async def test_update_changes_a_record(world: World, pets: Any) -> None:
    result = await world.admin.slash(
        world.channel, "update", table="pets", key="rex", changes='{"legs": 3}'
    )

    assert result.response.content.startswith("Updated `rex` in `pets`:")
    assert (await pets.get("rex")).legs == 3


@pytest.mark.parametrize(
    ("key", "changes", "complaint"),
    [
        ("rex", '{"legs": "x"}', "That does not fit table `pets`"),
        ("rex", '{"wings": 2}', "has no field `wings`"),
        ("rex", '{"name": "max"}', "The primary key `name` cannot change"),
        ("rex", "{}", "`changes` is empty"),
        ("rex", "legs=3", "`changes` is not valid JSON"),
        ("ghost", '{"legs": 3}', "Table `pets` has no record with key `ghost`"),
        ("tweety", '{"email": "rex@example.org"}', "`email` must be unique"),
    ],
)
async def test_update_refuses_bad_changes(
    world: World, pets: Any, key: str, changes: str, complaint: str
) -> None:
    before = await records_of(pets)
    result = await world.admin.slash(
        world.channel, "update", table="pets", key=key, changes=changes
    )

    assert complaint in result.response.content
    assert await records_of(pets) == before


async def test_delete_asks_first(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "delete", table="pets", key="rex")

    assert asked.response.content == (
        "Delete the record with key `rex` from `pets`? Confirm within a minute.\n"
        "**legs**: `4`\n**email**: `rex@example.org`"
    )
    assert "rex" in await records_of(pets)
    await world.admin.click(asked.response, label="Delete")

    assert asked.response.content == "Deleted `rex` from `pets`."
    assert sorted(await records_of(pets)) == ["tweety"]


async def test_delete_of_a_missing_record(world: World, pets: Any) -> None:
    result = await world.admin.slash(world.channel, "delete", table="pets", key="ghost")
    assert result.response.content == "Table `pets` has no record with key `ghost`."
    assert not result.response.components


async def test_export_jsonl_and_csv(world: World, pets: Any) -> None:
    jsonl = await world.reader.slash(world.channel, "export", table="pets")
    as_csv = await world.reader.slash(world.channel, "export", table="pets", format="csv")

    assert jsonl.ephemeral
    assert jsonl.response.content == "`pets`: 2 records as jsonl."
    [jsonl_file] = jsonl.response.attachments
    assert jsonl_file.filename == "pets.jsonl"
    lines = [json.loads(line) for line in (await jsonl_file.read()).decode().splitlines()]
    assert {"name": "rex", "legs": 4, "email": "rex@example.org"} in lines
    [csv_file] = as_csv.response.attachments
    rows = list(csv.DictReader(io.StringIO((await csv_file.read()).decode())))
    assert {"name": "tweety", "legs": "2", "email": ""} in rows


async def test_csv_export_does_not_carry_spreadsheet_formulas(world: World, pets: Any) -> None:
    await pets(name='=HYPERLINK("http://x")', legs=-1, email="@SUM(A1)").save()
    exported = await world.reader.slash(world.channel, "export", table="pets", format="csv")
    [csv_file] = exported.response.attachments
    rows = list(csv.DictReader(io.StringIO((await csv_file.read()).decode())))
    assert {"name": '\'=HYPERLINK("http://x")', "legs": "-1", "email": "'@SUM(A1)"} in rows


async def test_stored_text_cannot_ping_or_break_embeds(world: World, pets: Any) -> None:
    hostile = "@everyone <@123> **bold** `tick` " + "x" * 3000
    await pets(name="evil", legs=1, email=hostile).save()

    result = await world.reader.slash(world.channel, "find", table="pets", query="name=evil")

    message = result.response.message
    assert message.mentions == []
    assert not message.mention_everyone
    value = result.response.embeds[0].fields[0].value
    assert value.startswith(
        "**legs**: `1`\n**email**: `@everyone <@123> **bold** \u02cbtick\u02cb x"
    )
    assert value.endswith("x…`")
    assert len(value) <= 1024
    posted = [
        entry
        for entry in world.env.http_requests
        if entry.json and "allowed_mentions" in entry.json
    ]
    assert posted
    assert all(entry.json["allowed_mentions"]["parse"] == [] for entry in posted)


async def test_keys_and_fields_autocomplete(world: World, pets: Any) -> None:
    keys = await world.admin.autocomplete(world.channel, "update", "key", "tw", table="pets")
    sorts = await world.admin.autocomplete(world.channel, "find", "sort", "-l", table="pets")
    query = await world.admin.autocomplete(
        world.channel, "find", "query", "legs>2, em", table="pets"
    )

    assert [choice["value"] for choice in keys] == ["tweety"]
    assert [choice["value"] for choice in sorts] == ["-legs"]
    assert [choice["value"] for choice in query] == ["legs>2, em", "legs>2, email="]


async def test_autocomplete_offers_nothing_to_members_without_access(
    world: World, pets: Any
) -> None:
    choices = await world.member.autocomplete(world.channel, "find", "table", "")
    assert choices == []


FORMULAS = {
    "bob;=cmd|' /C calc'!A0": "bob;'=cmd|' /C calc'!A0",
    " =1+1": " '=1+1",
    "\u00a0=1+1": "\u00a0'=1+1",
    "\n+1": "\n'+1",
    "\t-1": "'\t'-1",
    "\uff1d1+1": "'\uff1d1+1",
    "a, @SUM(1)": "a, '@SUM(1)",
    "x |\u200b=1": "x |\u200b'=1",
    "plain; text, here": "plain; text, here",
}


async def test_csv_export_quotes_every_cell_and_guards_formulas_anywhere(world: World) -> None:
    database = await world.database()
    table = await database.create_table(
        "cells", {"text": "str", "ok": "bool", "n": "int", "j": "json?"}
    )
    for number, text in enumerate(FORMULAS):
        await table(
            text=text, ok=number % 2 == 0, n=-number, j=["=1"] if number == 0 else None
        ).save()

    exported = await world.reader.slash(world.channel, "export", table="cells", format="csv")

    [csv_file] = exported.response.attachments
    body = (await csv_file.read()).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["_key", "text", "ok", "n", "j"]
    assert body.startswith('"_key","text","ok","n","j"\n')
    by_text = {row[1]: row for row in rows[1:]}
    assert set(by_text) == set(FORMULAS.values())
    first = by_text[FORMULAS["bob;=cmd|' /C calc'!A0"]]
    assert first[2:] == ["true", "0", '["=1"]']
    assert by_text[FORMULAS[" =1+1"]][2:] == ["false", "-1", ""]
    for line in body.splitlines():
        if line.startswith('"'):
            assert line.endswith('"'), "every cell is quoted"


async def test_export_yields_to_other_work_while_it_builds(world: World) -> None:
    database = await world.database()
    table = await database.create_table("many", {"n": "int", "text": "str"})
    await table.insert_many([{"n": n, "text": f"row {n}"} for n in range(20_000)])
    # CPU time of this thread, so that the machine pausing the process does not count as a gap
    gaps: list[float] = []
    done = asyncio.Event()

    async def other_work() -> None:
        last = time.thread_time()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    gc.collect()
    gc.disable()  # a collection of the whole test session's heap is no stretch of the export
    try:
        other = asyncio.create_task(other_work())
        start = time.thread_time()
        exported = await world.reader.slash(world.channel, "export", table="many")
        took = time.thread_time() - start
        done.set()
        await other
    finally:
        gc.enable()

    assert exported.response.content == "`many`: 20,000 records as jsonl."
    assert max(gaps) < took / 3, "no single stretch of the export held the event loop"


def allow_attachments_of(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interactions that allow answers with attachments of at most ``limit`` bytes."""
    real_payload = simcord.interactions.base_payload

    def payload(*args: Any, **kwargs: Any) -> Any:
        record, built = real_payload(*args, **kwargs)
        built["attachment_size_limit"] = limit
        return record, built

    monkeypatch.setattr(simcord.interactions, "base_payload", payload)


async def test_a_large_export_is_compressed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_attachments_of(64 * 1024, monkeypatch)
    database = await world.database()
    table = await database.create_table("big", {"n": "int", "text": "str"})
    await table.insert_many([{"n": n, "text": "same text " * 10} for n in range(2000)])

    exported = await world.reader.slash(world.channel, "export", table="big")

    assert exported.response.content == (
        "`big`: 2,000 records as jsonl (gzip-compressed: it is larger than the upload limit)."
    )
    [attachment] = exported.response.attachments
    assert attachment.filename == "big.jsonl.gz"
    data = await attachment.read()
    assert len(data) <= 64 * 1024
    lines = gzip.decompress(data).decode().splitlines()
    assert len(lines) == 2000
    assert sorted(json.loads(line)["n"] for line in lines) == list(range(2000))


async def test_an_export_over_the_limit_stops_early_and_sends_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_attachments_of(16 * 1024, monkeypatch)
    database = await world.database()
    table = await database.create_table("noise", {"text": "str"})
    rng = random.Random(7)
    await table.insert_many(
        [
            {"text": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=100))}
            for _ in range(3000)
        ]
    )

    exported = await world.reader.slash(world.channel, "export", table="noise")

    text = exported.response.content
    match = re.fullmatch(
        r"The export is over the 16,384-byte upload limit Discord gives this reply, even "
        r"compressed \(it stopped after ([\d,]+) records\); export from a script with the "
        r"discobase library instead\.",
        text,
    )
    assert match, text
    assert int(match.group(1).replace(",", "")) < 1000
    assert not exported.response.attachments


async def test_a_bad_query_value_names_its_field_and_a_read_promises_nothing(
    world: World, pets: Any
) -> None:
    found = await world.reader.slash(world.channel, "find", table="pets", query="legs>=three")
    counted = await world.reader.slash(world.channel, "count", table="pets", query="legs>=three")

    expected = (
        "That does not fit table `pets`: in `legs>=three`, `legs`: Input should be a valid "
        "integer, unable to parse string as an integer."
    )
    assert found.response.content == expected
    assert counted.response.content == expected
    unreadable = await world.reader.slash(world.channel, "find", table="pets", query="legs")
    assert "Nothing was changed" not in unreadable.response.content
    refused = await world.admin.slash(world.channel, "insert", table="pets", data="{")
    assert refused.response.content.endswith("Nothing was changed.")


async def test_find_counts_every_match_past_the_limit(world: World, pets: Any) -> None:
    for name in ("kaa", "nagini"):
        await pets(name=name, legs=0).save()

    result = await world.reader.slash(world.channel, "find", table="pets", limit=2)

    embed = result.response.embeds[0]
    assert embed.title == "pets: records 1-2 of 4"
    assert embed.description == "(the first 2; `limit` shows up to 100)"
    assert len(embed.fields) == 2


async def test_a_duplicate_key_on_insert_points_to_update(world: World, pets: Any) -> None:
    result = await world.admin.slash(
        world.channel, "insert", table="pets", data='{"name": "rex", "legs": 1}'
    )

    assert result.response.content == (
        "`pets` has a record with key `rex` already; use /update to change it, or /delete it "
        "first. Nothing was changed."
    )
    assert (await pets.get("rex")).legs == 4


async def test_delete_confirmed_after_the_record_changed_deletes_nothing(
    world: World, pets: Any
) -> None:
    asked = await world.admin.slash(world.channel, "delete", table="pets", key="rex")
    rex = await pets.get("rex")
    await rex.update(legs=3)  # saved by someone else while the question is open
    await world.admin.click(asked.response, label="Delete")

    assert asked.response.content == (
        "The record `rex` in `pets` was changed by someone else meanwhile. Nothing was "
        "changed. Run the command again to see it as it is now."
    )
    assert (await records_of(pets))["rex"]["legs"] == 3


async def test_count_grouped_by_a_field(world: World, pets: Any) -> None:
    await pets(name="polly", legs=2, email="polly@example.org").save()

    grouped = await world.reader.slash(world.channel, "count", table="pets", group_by="legs")
    filtered = await world.reader.slash(
        world.channel, "count", table="pets", query="name!=rex", group_by="legs, email"
    )

    assert grouped.ephemeral
    assert grouped.response.content.splitlines() == [
        "3 records of `pets` in 2 groups by `legs`:",
        "`legs`=`2`: 2",
        "`legs`=`4`: 1",
    ]
    assert filtered.response.content.splitlines() == [
        "2 records of `pets` where `name!=rex` in 2 groups by `legs`, `email`:",
        "`legs`=`2`, `email`=`null`: 1",
        "`legs`=`2`, `email`=`polly@example.org`: 1",
    ]


async def test_count_grouped_by_an_unknown_field_is_refused(world: World, pets: Any) -> None:
    result = await world.reader.slash(world.channel, "count", table="pets", group_by="colour")

    assert result.ephemeral
    assert "`group_by` names `colour`, which is not a field" in result.response.content


async def test_count_with_many_groups_keeps_to_the_message_limit(world: World, pets: Any) -> None:
    await pets.insert_many([{"name": f"pet{n}", "legs": n} for n in range(300)])

    result = await world.reader.slash(world.channel, "count", table="pets", group_by="legs")

    text = result.response.content
    assert len(text) <= 2000
    assert text.startswith("302 records of `pets` in 300 groups by `legs`:")
    assert text.splitlines()[-1].startswith("… and ")
    shown = len(text.splitlines()) - 2
    assert text.splitlines()[-1] == f"… and {300 - shown} more groups"


async def test_insert_into_a_claiming_table_claims_its_unique_value_first(world: World) -> None:
    database = await world.database()
    members = await database.create_table(
        "members", {"key": "str", "email": "str"}, primary_key="key", unique=["email"],
        claim_unique=True,
    )  # fmt: skip
    sent = len(world.env.http_requests)
    result = await world.admin.slash(
        world.channel, "insert", table="members", data='{"key": "a", "email": "a@example.org"}'
    )
    assert result.deferred  # the claim settles about Compaction.margin later
    assert await members.find() == []
    await world.env.advance_time(discobase.Compaction().margin + 5)
    assert result.response is not None
    assert "Inserted into `members` with key `a`" in result.response.content
    kinds = [
        str(r.json["content"]).split()[1]
        for r in world.env.http_requests[sent:]
        if r.method == "POST" and isinstance(r.json, dict)
        and str(r.json.get("content", "")).startswith("dbs1")
    ]  # fmt: skip
    assert kinds == ["claim", "claim", "batch"]  # the key (an insert) and the email
    assert [m.email for m in await members.find()] == ["a@example.org"]


async def test_export_reads_the_table_with_a_cursor_while_it_changes(world: World) -> None:
    database = await world.database()
    table = await database.create_table("many", {"n": "int", "text": "str"}, primary_key="n")
    await table.insert_many([{"n": n, "text": f"row {n}"} for n in range(20_000)])
    deleted: set[int] = set()
    changed: set[int] = set()
    done = asyncio.Event()

    async def writes() -> None:  # while the export runs, from the end of the table backwards
        n = 19_997
        while not done.is_set() and n > 0:
            await asyncio.sleep(0)
            deleted.add(n)
            await (await table.get(n)).delete()
            changed.add(n + 1)
            await (await table.get(n + 1)).update(text="changed")
            await table(n=100_000 + n, text="new").save()
            n -= 397

    writing = asyncio.create_task(writes())
    exported = await world.reader.slash(world.channel, "export", table="many")
    done.set()
    await writing
    [jsonl_file] = exported.response.attachments
    rows = [json.loads(line) for line in (await jsonl_file.read()).decode().splitlines()]
    keys = [row["n"] for row in rows]
    assert keys == sorted(set(keys))  # key order, none twice
    assert set(range(20_000)) - deleted - changed <= set(keys)  # every record present throughout
    assert any(row["text"] == "changed" for row in rows)  # a change made while it ran is in it
    for row in rows:
        original = f"row {row['n']}"
        if row["n"] in changed:
            assert row["text"] in (original, "changed")
        elif row["n"] >= 100_000:
            assert row["text"] == "new"
        else:
            assert row["text"] == original
