"""``/import``: an attached file validated in full, then written with a progress message.

SimCord's ``slash()`` takes an attachment option as ``(filename, bytes)`` and serves it from its
CDN, so these tests upload files the way a member does.
"""

from __future__ import annotations

import json
from typing import Any

from cog_world import World

from cogs.imports import Imports


async def pets_records(world: World) -> dict[str, Any]:
    database = await world.database()
    return {p.name: p.model_dump(mode="json") async for p in database.tables["pets"].all()}


def jsonl(*records: dict[str, Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


async def test_import_inserts_a_valid_file_and_says_how_many(world: World, pets: Any) -> None:
    file = jsonl({"name": "kaa", "legs": 0}, {"name": "nemo", "legs": 0, "email": "n@sea"})
    result = await world.admin.slash(world.channel, "import", table="pets", file=("p.jsonl", file))
    assert result.ephemeral
    assert result.response.content == "Imported 2 records into `pets`."
    found = await pets_records(world)
    assert sorted(found) == ["kaa", "nemo", "rex", "tweety"]
    assert found["nemo"] == {"name": "nemo", "legs": 0, "email": "n@sea"}

    csv = b"name,legs,email\nslinky,0,\nspot,4,spot@x\n"
    result = await world.admin.slash(world.channel, "import", table="pets", file=("p.csv", csv))
    assert result.response.content == "Imported 2 records into `pets`."
    found = await pets_records(world)
    assert found["slinky"] == {"name": "slinky", "legs": 0, "email": None}


async def test_import_of_a_bad_file_lists_the_rows_and_changes_nothing(
    world: World, pets: Any
) -> None:
    before = await pets_records(world)
    file = (
        jsonl({"name": "ok", "legs": 1}, {"name": "rex"}, {"name": "x", "legs": "many"})
        + b"[1, 2]\n"
        + jsonl({"name": "y", "email": "rex@example.org"})
    )
    result = await world.admin.slash(world.channel, "import", table="pets", file=("p.jsonl", file))
    text = result.response.content
    assert text.startswith("4 rows of 5 are invalid. Nothing was imported.")
    for line, why in ((2, "key name='rex'"), (3, "legs"), (4, "not a JSON object"),
                      (5, "email='rex@example.org'")):  # fmt: skip
        assert f"line {line}: " in text and why in text
    assert await pets_records(world) == before

    result = await world.admin.slash(
        world.channel, "import", table="pets", file=("p.jsonl", file), skip_invalid=True
    )
    assert result.response.content == "Imported 1 record into `pets`; skipped 4 invalid rows."
    assert sorted(await pets_records(world)) == ["ok", "rex", "tweety"]


async def test_import_refuses_other_files_tables_and_members(world: World, pets: Any) -> None:
    before = await pets_records(world)
    for options, complaint in (
        ({"table": "pets", "file": ("p.txt", b"x")}, "`p.txt` is not a .jsonl or .csv file"),
        ({"table": "nope", "file": ("p.jsonl", b"{}\n")}, "There is no table `nope`"),
        ({"table": "pets", "file": ("p.csv", b"\xff\xfe")}, "is not UTF-8 text"),
    ):
        result = await world.admin.slash(world.channel, "import", **options)
        assert complaint in result.response.content
    file = ("p.jsonl", jsonl({"name": "kaa", "legs": 0}))
    for member in (world.reader, world.member):
        result = await member.slash(world.channel, "import", table="pets", file=file)
        assert "Changing the database needs" in result.response.content
    assert await pets_records(world) == before


async def test_import_edits_its_progress_message_no_more_often_than_the_interval(
    world: World, pets: Any
) -> None:
    cog: Any = world.bot.get_cog("Imports")  # the extension's own module object
    assert cog is not None and cog.progress_interval == Imports.progress_interval == 2.0
    now = [0.0]
    cog.clock = lambda: now[0]
    file = jsonl(*({"name": f"p{i}", "legs": i % 5} for i in range(1600)))  # 4 chunks of 500

    def edits_since(start: int) -> list[str]:
        return [
            r.path
            for r in world.env.http_requests[start:]
            if r.method == "PATCH" and r.path.endswith("/messages/@original")
        ]

    start = len(world.env.http_requests)
    result = await world.admin.slash(world.channel, "import", table="pets", file=("p.jsonl", file))
    assert result.response.content == "Imported 1,600 records into `pets`."
    # The clock stood still: the first progress message and the answer, nothing between.
    assert len(edits_since(start)) == 2

    def ticking() -> float:  # 3 s pass between two readings: over the 2 s interval
        now[0] += 3.0
        return now[0]

    cog.clock = ticking  # an edit after each chunk but the last
    file = jsonl(*({"name": f"q{i}", "legs": 1} for i in range(1600)))
    start = len(world.env.http_requests)
    result = await world.admin.slash(world.channel, "import", table="pets", file=("q.jsonl", file))
    assert result.response.content == "Imported 1,600 records into `pets`."
    assert len(edits_since(start)) == 2 + 3
    assert (await world.database()).schema("pets").record_count == 2 + 3200


async def test_an_export_of_a_table_with_generated_keys_imports_back(world: World) -> None:
    database = await world.database()
    notes = await database.create_table("notes", {"text": "str", "stars": "int?"})
    await notes.insert_many([{"text": "a", "stars": 1}, {"text": "b, c"}])
    files = []
    for fmt in ("jsonl", "csv"):
        exported = await world.reader.slash(world.channel, "export", table="notes", format=fmt)
        [file] = exported.response.attachments
        files.append((file.filename, await file.read()))
    assert files[1][1].startswith(b'"_key",')
    for file in files:
        result = await world.admin.slash(world.channel, "import", table="notes", file=file)
        assert result.response.content == "Imported 2 records into `notes`."  # new keys
    texts = sorted([(n.text, n.stars) async for n in notes.all()])
    assert texts == [("a", 1)] * 3 + [("b, c", None)] * 3
