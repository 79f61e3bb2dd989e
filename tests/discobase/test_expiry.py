"""Expiry (``Settings.ttl``): a record is gone once its last write (its message id's time) is
older than the ttl: no read returns it at once, and compaction removes it from Discord."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import discord
import pytest

import discobase
from discobase.engine.horizon import snowflake_ms
from tests.conftest import make_bot, past_horizon, rest_calls

TTL = dt.timedelta(seconds=60)


def session_class(ttl: dt.timedelta | None) -> type[discobase.Table]:
    """The session table's class with ``ttl`` (None: without one), as one process (or one
    version of a program) declares it."""

    class Session(discobase.Table):
        key: str
        user: str

        class Settings:
            name = "session"
            primary_key = "key"
            unique = ["user"]
            indexes = ["user"]

    if ttl is not None:
        Session.Settings.ttl = ttl  # type: ignore[attr-defined]
    return Session


Session = session_class(TTL)
#: The same table without its ttl.
Forever = session_class(None)


async def open_db(new_db, cls=Session, **options):
    db = new_db(**options)
    if cls is not None:
        db.table(cls)
    await db.open()
    return db


async def keys() -> dict[str, list[str]]:
    """What every read verb returns."""
    return {
        "find": sorted(s.key for s in await Session.find()),
        "indexed": sorted(s.key for s in await Session.find(Session.user >= "")),
        "all": sorted([s.key async for s in Session.all()]),
        "count": [str(await Session.count())],
    }


async def test_expired_records_are_invisible_to_every_read_at_once(simcord_env, new_db):
    db = await open_db(new_db)
    await Session(key="a", user="ann").save()
    await Session(key="b", user="bob").save()
    await simcord_env.advance_time(30)
    await Session(key="c", user="cid").save()
    await (await Session.get("b")).update(user="ben")  # a write restarts the clock
    assert await keys() == {
        "find": ["a", "b", "c"],
        "indexed": ["a", "b", "c"],
        "all": ["a", "b", "c"],
        "count": ["3"],
    }

    await simcord_env.advance_time(31)

    assert await keys() == {
        "find": ["b", "c"],
        "indexed": ["b", "c"],
        "all": ["b", "c"],
        "count": ["2"],
    }
    with pytest.raises(discobase.RecordNotFoundError):
        await Session.get("a")
    assert await Session.find_one(user="ann") is None
    assert db.schema("session").record_count == 2
    # an expired record holds neither its key nor its unique value
    await Session(key="a2", user="ann").insert()
    await Session(key="a", user="amy").insert()
    assert (await Session.get("a")).user == "amy"
    await db.close()


async def test_the_clock_starts_at_the_last_writes_message_id(simcord_env, new_db):
    db = await open_db(new_db)
    record = await Session(key="a", user="ann").save()
    written_ms = snowflake_ms(record.revision)
    await simcord_env.advance_time(TTL.total_seconds() - 1)
    assert [s.key for s in await Session.find()] == ["a"]
    clock_ms = int(discord.utils.utcnow().timestamp() * 1000)
    assert clock_ms - written_ms < TTL.total_seconds() * 1000

    await simcord_env.advance_time(1)

    assert int(discord.utils.utcnow().timestamp() * 1000) - written_ms >= 60_000
    assert await Session.find() == []
    await db.close()


async def test_compaction_removes_expired_records_from_discord(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    await Session(key="old", user="ann").save()
    await simcord_env.advance_time(30)
    await Session(key="new", user="bob").save()
    await simcord_env.advance_time(31)  # "old" expired; no read or write since
    await past_horizon(simcord_env)  # both writes may be folded

    assert await db.compact() > 0

    await db.close()
    # a new process without the class reads the table from the catalog: ttl included
    await simcord_env.restart_bot(make_bot())
    db2 = await open_db(new_db, cls=None)
    assert db2.schema("session").ttl == 60
    Sessions = db2.tables["session"]
    assert sorted(s.key for s in await Sessions.find()) == ["new"]
    await db2.close()
    # a class without the ttl sees what is stored: the compaction left the expired one out
    await simcord_env.restart_bot(make_bot())
    db3 = await open_db(new_db, cls=Forever)
    assert db3.schema("session").ttl is None
    assert sorted(s.key for s in await Forever.find()) == ["new"]
    await db3.close()


async def test_without_compaction_an_expired_record_stays_stored(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    await Session(key="old", user="ann").save()
    await simcord_env.advance_time(61)
    assert await Session.count() == 0
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = await open_db(new_db, cls=Forever)
    assert [s.key for s in await Forever.find()] == ["old"]  # dropping the ttl brings it back
    await db2.close()


async def test_a_record_loaded_after_it_expired_is_never_returned(simcord_env, new_db):
    db = await open_db(new_db)
    await Session(key="a", user="ann").save()
    await db.close()
    await simcord_env.advance_time(61)
    await simcord_env.restart_bot(make_bot())

    db2 = await open_db(new_db)

    assert await Session.count() == 0
    assert await Session.find(user="ann") == []
    await db2.close()


@pytest.mark.parametrize(
    "ttl", [dt.timedelta(0), dt.timedelta(seconds=-5), 60, "1h", dt.timedelta(microseconds=10)]
)
async def test_a_bad_ttl_is_a_schema_error_and_creates_nothing(simcord_env, new_db, ttl):
    class Bad(discobase.Table):
        key: str

        class Settings:
            primary_key = "key"

    Bad.Settings.ttl = ttl  # type: ignore[attr-defined]
    db = await open_db(new_db, cls=None)
    before = len(simcord_env.http_requests)

    with pytest.raises(discobase.SchemaError, match="ttl must be a positive"):
        db.table(Bad)
    with pytest.raises(discobase.SchemaError, match="ttl must be a positive"):
        await db.create_table("bad", {"key": str}, ttl=ttl)

    assert rest_calls(simcord_env, before) == []
    assert "bad" not in db.tables
    await db.close()


async def test_a_runtime_table_with_a_ttl(simcord_env, new_db):
    db = await open_db(new_db, cls=None)
    Tokens = await db.create_table("tokens", {"value": str}, ttl=dt.timedelta(seconds=5))
    await Tokens(value="t1").save()
    assert await Tokens.count() == 1

    await simcord_env.advance_time(5)

    assert await Tokens.count() == 0
    assert db.schema("tokens").ttl == 5
    await db.close()


async def test_a_ttl_another_process_records_is_followed_by_a_process_already_open(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_db(new_db, compaction=None)
    await Session(key="a", user="ann").save()
    other = await strict.second_process()

    async def declare(ttl: dt.timedelta | None) -> None:
        """Open and close the table in the other process with ``ttl`` in its class."""
        await simcord_env.advance_time(1)  # its ids run behind P's: its alter comes after
        q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
        q.table(session_class(ttl))
        await q.open()
        await q.close()
        await simcord_env.settle()  # P hears of the alter

    await declare(dt.timedelta(seconds=10))
    assert p.schema("session").ttl == 10
    await simcord_env.advance_time(9)  # "a" was written 10 s ago
    assert await keys() == {"find": [], "indexed": [], "all": [], "count": ["0"]}
    await Session(key="b", user="bob").save()
    await simcord_env.advance_time(9)
    assert await keys() == {"find": ["b"], "indexed": ["b"], "all": ["b"], "count": ["1"]}

    await declare(dt.timedelta(seconds=100))
    assert p.schema("session").ttl == 100
    await simcord_env.advance_time(60)  # 70 s after "b"'s write: past 10, before 100
    assert await Session.count() == 1
    await simcord_env.advance_time(30)
    assert await Session.count() == 0

    await declare(None)
    assert p.schema("session").ttl is None
    await Session(key="c", user="cid").save()
    await simcord_env.advance_time(3600)
    assert [s.key for s in await Session.find()] == ["c"]
    await p.close()


async def test_a_process_that_forgot_records_under_a_shorter_ttl_compacts_none_of_them_away(
    simcord_env, new_db, guild, strict, fast_retry
):
    """P forgets a record under a 30 s ttl; another process records an hour: the record is
    live again (a new process sees it), so P's memory, which lacks it, is no snapshot."""
    p = await open_db(new_db, cls=session_class(dt.timedelta(seconds=30)), compaction=None)
    Short = p.tables["session"]
    await Short(key="a", user="ann").save()
    await simcord_env.advance_time(40)
    assert await Short.count() == 0  # forgotten here
    other = await strict.second_process()
    await simcord_env.advance_time(1)  # its ids run behind P's: its alter comes after
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    q.table(session_class(dt.timedelta(hours=1)))
    await q.open()
    assert [s.key for s in await q.tables["session"].find()] == ["a"]
    await q.close()
    await simcord_env.settle()
    assert p.schema("session").ttl == 3600
    await past_horizon(simcord_env)

    assert await p.compact("session") == 0
    await p.close()

    await simcord_env.restart_bot(make_bot())
    fresh = await open_db(new_db, cls=None)
    assert [s.key for s in await fresh.tables["session"].find()] == ["a"]
    await fresh.close()


async def expiry_bytes_after(writes: int, cls: type[discobase.Table]) -> int:
    """Bytes that the expiry's own code holds more after ``writes`` updates of five records."""
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        for i in range(writes):
            await cls(key=f"k{i % 5}", user=f"u{i % 5}").save()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    only = [tracemalloc.Filter(True, "*/discobase/engine/expiry.py")]
    diff = after.filter_traces(only).compare_to(before.filter_traces(only), "filename")
    return sum(d.size_diff for d in diff)


async def test_a_ttl_another_process_removes_leaves_no_expiry_work_behind(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_db(new_db, compaction=None)
    other = await strict.second_process()
    await simcord_env.advance_time(1)  # its ids run behind P's: its alter comes after
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    q.table(Forever)
    await q.open()
    await q.close()
    await simcord_env.settle()
    assert p.schema("session").ttl is None

    # With a ttl, the expiry's heap is pruned as it grows; without one nothing would prune it.
    assert await expiry_bytes_after(1200, Session) < 20_000
    await p.close()
