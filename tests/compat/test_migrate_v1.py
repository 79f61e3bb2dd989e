"""Data written by the real discobase 1.0.0 moves into this version's storage, 1.0's known
corruptions included, and the 1.0 channels are left exactly as they were.

``v1_guild.json`` is a guild as 1.0.0 left it on SimCord, recorded by ``record_v1_guild.py``
(run it with the benchmark's 1.0.0 environment to regenerate). Each test replays it into a
fresh SimCord guild: the same channels and messages, in the same order, by the same authors
(the bot, or a member), with ids renumbered as the new guild assigns them.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import simcord

import discobase
from discobase.__main__ import run
from tests.conftest import make_bot

RECORDING: dict[str, Any] = json.loads((Path(__file__).parent / "v1_guild.json").read_text())
_ID = re.compile(r"\d{17,20}")


def recorded(channel: str, author: str = "bot") -> list[dict[str, Any]]:
    [found] = [c for c in RECORDING["channels"] if c["name"] == channel]
    return [m for m in found["messages"] if m["author"] == author]


def record_fields(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(json.loads(message["content"])["content"]))


BOOKMARKS = {record_fields(m)["title"]: record_fields(m) for m in recorded("bookmark")}
#: Titles whose save raised in 1.0 after its record message was sent (the index overflowed).
HALF_SAVED = sorted(
    label.removeprefix("save ")
    for label in RECORDING["v1_failures"]
    if label.startswith("save page") and label.removeprefix("save ") in BOOKMARKS
)
#: Saved titles 1.0's own find no longer returned (index slots lost in its resizes).
LOST = sorted(t for t, ok in RECORDING["v1_findable"].items() if not ok and t in BOOKMARKS)


def replay(env: simcord.Env, guild: simcord.GuildHandle) -> list[int]:
    """Put the recorded 1.0 channels and messages into ``guild``; return the channels' ids."""
    assert env.bot.user is not None
    member = env.create_user("someone")
    guild.add_member(member)
    authors = {"bot": env.bot.user.id, "member": member.id}
    ids: dict[int, int] = {}
    for channel in RECORDING["channels"]:
        ids[channel["id"]] = guild.create_text_channel(channel["name"]).id
    messages = sorted(
        (m["id"], channel["id"], m)
        for channel in RECORDING["channels"]
        for m in channel["messages"]
    )
    for old_id, channel_id, message in messages:
        made = env.backend.create_message(
            ids[channel_id], authors[message["author"]], ".", broadcast=False
        )
        ids[old_id] = made.id
    for old_id, channel_id, message in messages:
        content = _ID.sub(lambda m: str(ids.get(int(m.group()), m.group())), message["content"])
        env.backend.edit_message(ids[channel_id], ids[old_id], {"content": content})
    return [ids[channel["id"]] for channel in RECORDING["channels"]]


@pytest.fixture
def v1_guild(simcord_env: simcord.Env) -> tuple[simcord.GuildHandle, list[int]]:
    guild = simcord_env.create_guild(RECORDING["guild"])
    return guild, replay(simcord_env, guild)


@pytest.fixture
def guild(v1_guild: tuple[simcord.GuildHandle, list[int]]) -> simcord.GuildHandle:
    return v1_guild[0]


async def v1_channels(env: simcord.Env, ids: list[int]) -> dict[int, list[tuple[int, int, str]]]:
    """Every 1.0 channel's messages: (id, author, content)."""
    return {
        channel_id: [
            (m.id, m.author.id, m.content)
            async for m in env.bot.get_channel(channel_id).history(limit=None)
        ]
        for channel_id in ids
    }


def guild_channels(env: simcord.Env, guild: simcord.GuildHandle) -> set[int]:
    return {channel.id for channel in env.bot.get_guild(guild.id).channels}


def by_name(report: discobase.MigrationReport) -> list[Any]:
    """The report's bookmark and tag tables."""
    return sorted(report.tables, key=lambda table: table.name)


def rest_methods(env: simcord.Env, since: int) -> set[str]:
    return {request.method for request in env.http_requests[since:]}


async def test_every_record_1_0_stored_moves_over_and_1_0_data_stays_untouched(
    simcord_env, v1_guild, new_db
):
    before = await v1_channels(simcord_env, v1_guild[1])
    assert len(LOST) >= 5 and len(HALF_SAVED) >= 10  # the recording holds both corruptions
    db = new_db()
    await db.open()
    since = len(simcord_env.http_requests)
    report = await discobase.migrate_v1(db)

    assert await v1_channels(simcord_env, v1_guild[1]) == before
    touched = {
        (r.method, cid)
        for r in simcord_env.http_requests[since:]
        for cid in v1_guild[1]
        if f"/channels/{cid}" in r.path
    }
    assert {method for method, _ in touched} == {"GET"} and len(touched) == 10  # read them all
    bookmark, tag = by_name(report)
    assert (bookmark.name, bookmark.created) == ("bookmark", True)
    assert bookmark.fields == {"title": "str", "url": "str", "stars": "int", "public": "bool"}
    assert bookmark.found == bookmark.migrated == len(BOOKMARKS) == 109
    assert bookmark.not_indexed >= len(LOST) + len(HALF_SAVED)
    [foreign] = bookmark.unreadable
    assert "not by the discobase 1.0 bot" in foreign.reason
    assert list(tag.fields.items()) == [("name", "str"), ("uses", "int"), ("aliases", "json")]
    assert tag.migrated == 3 and tag.not_indexed == 3  # 1.0 could not hash a list: no index
    assert report.records == 112 and not report.unreadable and not report.ok

    Bookmark, Tag = db.tables["bookmark"], db.tables["tag"]
    for title in LOST + HALF_SAVED:
        assert len(await Bookmark.find(title=title)) == 1, title
    assert (await Bookmark.find_unique(title="page 003")).stars == 42  # type: ignore[union-attr]
    assert await Bookmark.find_unique(title="page 004") is None  # deleted in 1.0
    assert sorted(t.aliases for t in await Tag.find()) == [
        ["mi", "MISC"],
        ["ne", "NEWS"],
        ["py", "PYTHON"],
    ]
    stored = {b.title: b.model_dump() for b in await Bookmark.find()}
    assert stored == BOOKMARKS

    again = await discobase.migrate_v1(db)  # keys come from 1.0's message ids: no copies
    assert again.records == 112 and await Bookmark.count() == 109
    assert not any(t.created for t in again.tables)
    await db.close()

    await simcord_env.restart_bot(make_bot())
    reopened = new_db()
    await reopened.open()
    assert await reopened.tables["bookmark"].count() == 109
    assert await reopened.tables["tag"].count() == 3
    await reopened.close()


async def test_into_another_guild_a_declared_class_and_a_new_name(simcord_env, guild, new_db):
    home = simcord_env.create_guild("new home")
    before = guild_channels(simcord_env, guild)
    db = discobase.Database(home.id, bot=simcord_env.bot)
    await db.open()

    @db.table
    class Bookmark(discobase.Table):
        title: str
        url: str
        stars: int = 0
        public: bool = False

        class Settings:
            primary_key = "url"
            unique = ("title",)

    report = await discobase.migrate_v1(db, guild.id, rename={"tag": "labels"})

    assert report.source_guild == guild.id and report.target_guild == home.id
    bookmark, labels = by_name(report)
    assert bookmark.fields == {"title": "str", "url": "str", "stars": "int", "public": "bool"}
    assert not bookmark.created and bookmark.migrated == 109
    assert (labels.target, labels.created, labels.migrated) == ("labels", True, 3)
    assert (await Bookmark.get("https://example.org/3")).stars == 42
    assert await db.tables["labels"].count() == 3
    assert guild_channels(simcord_env, guild) == before
    await db.close()


async def test_a_dry_run_reports_and_writes_nothing(simcord_env, guild, new_db):
    db = new_db()
    await db.open()
    since = len(simcord_env.http_requests)
    report = await discobase.migrate_v1(db, dry_run=True)
    assert rest_methods(simcord_env, since) == {"GET"}
    assert report.dry_run and report.records == 112
    assert "would migrate 2 tables, 112 records" in str(report)
    assert "bookmark" not in db.tables
    await db.close()


async def test_records_that_cannot_be_read_are_reported_with_why(simcord_env, guild, new_db):
    tag_channel = next(c for c in guild.channels.values() if c.name == "tag")
    assert simcord_env.bot.user is not None
    me = simcord_env.bot.user.id
    wrong_fields = base64.urlsafe_b64encode(b'{"colour": "red"}').decode()
    not_json = base64.urlsafe_b64encode(b"{oops").decode()
    bad_type = base64.urlsafe_b64encode(b'{"name": "x", "uses": 1.5, "aliases": []}').decode()
    for content in (
        "plain words",
        json.dumps({"content": wrong_fields}),
        json.dumps({"content": not_json}),
        json.dumps({"content": bad_type}),
    ):
        simcord_env.backend.create_message(tag_channel.id, me, content, broadcast=False)
    db = new_db()

    @db.table
    class Tag(discobase.Table):
        name: str
        uses: int
        aliases: list[str]

    await db.open()
    report = await discobase.migrate_v1(db)
    _, tag = by_name(report)
    reasons = [u.reason for u in tag.unreadable]
    assert tag.migrated == 3 and tag.found == 4 and len(reasons) == 4
    assert "not a 1.0 record" in reasons[0] and "not a 1.0 record" in reasons[2]
    assert "are not the table's" in reasons[1]
    assert "uses" in reasons[3]
    assert all(u.table == "tag" and u.message_id for u in tag.unreadable)
    assert str(tag.unreadable[0]) in str(report)
    await db.close()


async def test_a_guild_without_1_0_data_is_refused(simcord_env, guild, new_db):
    empty = simcord_env.create_guild("empty")
    db = new_db()
    await db.open()
    with pytest.raises(discobase.V1DataNotFoundError, match="_dbmetadata"):
        await discobase.migrate_v1(db, empty.id)
    await db.close()


async def test_the_migrate_v1_command(simcord_env, guild, capsys, monkeypatch):
    code = await run(["migrate-v1", "--source", str(guild.id), "--dry-run"], simcord_env.bot)
    out = capsys.readouterr().out
    assert code == 0 and "would migrate 2 tables, 112 records" in out
    assert "table bookmark (title: str, url: str, stars: int, public: bool)" in out

    code = await run(
        ["migrate-v1", "--source", RECORDING["guild"], "--rename", "tag=labels"],
        simcord_env.bot,
    )
    out = capsys.readouterr().out
    assert code == 0 and "migrated 2 tables, 112 records" in out and "into labels" in out

    assert await run(["migrate-v1", "--source", "no such guild"], simcord_env.bot) == 1
    assert "no such guild" in capsys.readouterr().err
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert await run(["migrate-v1", "--source", "1"]) == 2
    with pytest.raises(SystemExit):
        await run(["migrate-v1", "--source", "1", "--rename", "nonsense"], simcord_env.bot)
