"""Unique values across processes (``Settings.claim_unique``): a write that takes a unique
value claims it in the log and waits for the claim to settle; of two processes taking one
value at once exactly one succeeds (docs/library.md, "Unique across processes")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import discobase
from tests.conftest import make_bot, past_horizon


def member_as_declared(**settings: Any) -> type[discobase.Table]:
    """The member table as a process's class declares it: these ``Settings`` besides its
    name, key and unique field (each process registers a class of its own)."""

    class Member(discobase.Table):
        key: str
        email: str
        n: int = 0

        class Settings:
            name = "member"
            primary_key = "key"
            unique = ["email"]

    for option, value in settings.items():
        setattr(Member.Settings, option, value)
    return Member


Member = member_as_declared(claim_unique=True)
#: The same table, as the second process declares it.
OtherMember = member_as_declared(claim_unique=True)


async def two_processes(
    simcord_env,
    new_db,
    guild,
    strict,
    fast_retry,
    theirs: type[discobase.Table] | None = OtherMember,
):
    """P, this process, with ``Member``; Q, a second process, with ``theirs`` (None: no class
    for the table, as the bot)."""
    p = new_db(compaction=None)
    p.table(Member)
    await p.open()
    other = await strict.second_process()
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    if theirs is not None:
        q.table(theirs)
    await q.open()
    return p, q, other


async def settle_claims(env, *dbs: discobase.Database) -> None:
    """Time passes the horizon margin and each process reads: every claim is settled."""
    await past_horizon(env)
    for db in dbs:
        await db.sync()


async def at_once(env, strict, processes, mine, theirs) -> list[Any]:
    """Run a write in each process while neither hears of the other's claim or record, then
    let every claim settle; return both outcomes."""
    p, q, other = processes
    strict.hold_gateway()
    strict.hold_gateway(other)
    tasks = [asyncio.ensure_future(mine), asyncio.ensure_future(theirs)]
    await env.settle()
    assert not any(t.done() for t in tasks)  # each waits for its claim to settle
    strict.release_gateway()
    strict.release_gateway(other)
    await settle_claims(env, p, q)
    return await asyncio.gather(*tasks, return_exceptions=True)


async def stored(env, new_db) -> dict[str, str]:
    await env.restart_bot(make_bot())
    db = new_db(compaction=None)
    db.table(Member)
    await db.open()
    found = {m.key: m.email for m in await Member.find()}
    await db.close()
    return found


@pytest.mark.parametrize(
    ("verb", "mine", "theirs"),
    [
        ("save", {"key": "a", "email": "x@example.com"}, {"key": "b", "email": "x@example.com"}),
        ("insert", {"key": "k", "email": "p@example.com"}, {"key": "k", "email": "q@example.com"}),
    ],
)
async def test_two_processes_taking_one_value_or_key_at_once_let_exactly_one_through(
    simcord_env, new_db, guild, strict, fast_retry, verb, mine, theirs
):
    p, q, other = await two_processes(simcord_env, new_db, guild, strict, fast_retry)
    results = await at_once(
        simcord_env,
        strict,
        (p, q, other),
        getattr(Member(**mine), verb)(),
        getattr(OtherMember(**theirs), verb)(),
    )
    # Q's ids run 5 ms behind P's: its claim came first in log order, so P's write fails.
    assert isinstance(results[0], discobase.UniqueViolationError)
    assert results[0].key == theirs["key"]
    assert not isinstance(results[1], BaseException)
    await simcord_env.settle()
    assert [m.email for m in await Member.find()] == [theirs["email"]]
    assert [m.email for m in await OtherMember.find()] == [theirs["email"]]
    await q.close()
    await p.close()
    assert await stored(simcord_env, new_db) == {theirs["key"]: theirs["email"]}


async def test_a_write_that_loses_a_claim_releases_its_other_claims(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, other = await two_processes(simcord_env, new_db, guild, strict, fast_retry)
    results = await at_once(
        simcord_env,
        strict,
        (p, q, other),
        Member(key="a", email="x@example.com").insert(),
        OtherMember(key="b", email="x@example.com").insert(),
    )
    # P claimed key "a" and lost the email to Q: it never writes, and says so in the log.
    assert isinstance(results[0], discobase.UniqueViolationError)
    assert results[0].field == "email" and not isinstance(results[1], BaseException)
    await simcord_env.advance_time(1)  # past the 5 ms by which Q's ids run behind
    # So key "a" is free at once for Q (not only after CLAIM_TTL, 300 s) and for P again.
    taken = asyncio.ensure_future(OtherMember(key="a", email="y@example.com").insert())
    mine = asyncio.ensure_future(Member(key="c", email="x@example.com").insert())
    await settle_claims(simcord_env, p, q)
    await taken
    with pytest.raises(discobase.UniqueViolationError):  # a value really held stays held
        await mine
    await q.close()
    await p.close()
    assert await stored(simcord_env, new_db) == {"a": "y@example.com", "b": "x@example.com"}


async def test_a_claim_settles_against_a_record_this_process_had_not_seen(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, _ = await two_processes(simcord_env, new_db, guild, strict, fast_retry)
    strict.hold_gateway()  # P does not hear of Q's record
    first = asyncio.ensure_future(OtherMember(key="b", email="x@example.com").save())
    await settle_claims(simcord_env, q)
    await first
    await simcord_env.advance_time(1)
    late = asyncio.ensure_future(Member(key="a", email="x@example.com").save())
    await simcord_env.settle()
    assert not late.done()
    await settle_claims(simcord_env, p)  # the settling read brings in Q's claim and record
    with pytest.raises(discobase.UniqueViolationError) as raised:
        await late
    assert raised.value.key == "b" and raised.value.field == "email"
    strict.release_gateway()
    await q.close()
    await p.close()
    assert await stored(simcord_env, new_db) == {"b": "x@example.com"}


async def test_a_write_that_keeps_its_unique_values_claims_nothing(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, _ = await two_processes(simcord_env, new_db, guild, strict, fast_retry)
    saving = asyncio.ensure_future(Member(key="a", email="x@example.com").save())
    await settle_claims(simcord_env, p)
    member = await saving
    sent = len(simcord_env.http_requests)
    await member.update(n=1)  # no new value: no claim, no wait
    assert [r.method for r in simcord_env.http_requests[sent:]] == ["POST"]
    report = await p.check()  # claim messages are storage, not problems
    assert report.ok, str(report)
    await q.close()
    await p.close()


async def test_a_process_without_the_class_follows_the_recorded_claim_unique(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, other = await two_processes(simcord_env, new_db, guild, strict, fast_retry, None)
    assert q.schema("member").claim_unique is True
    assert q.schema("member").to_dict()["claim_unique"] is True
    Generated = q.tables["member"]
    results = await at_once(
        simcord_env,
        strict,
        (p, q, other),
        Member(key="a", email="x@example.com").save(),
        Generated(key="b", email="x@example.com").save(),
    )
    assert isinstance(results[0], discobase.UniqueViolationError)
    assert not isinstance(results[1], BaseException)
    await q.close()
    await p.close()
    assert await stored(simcord_env, new_db) == {"b": "x@example.com"}


async def test_create_table_records_claim_unique_and_its_writes_claim(simcord_env, new_db):
    db = new_db(compaction=None)
    await db.open()
    Pets = await db.create_table(
        "pets", {"name": str, "tag": str}, primary_key="name", unique=["tag"], claim_unique=True
    )
    saving = asyncio.ensure_future(Pets(name="rex", tag="t1").save())
    await simcord_env.settle()
    assert not saving.done()  # waits for its claim to settle
    await settle_claims(simcord_env, db)
    await saving
    await db.close()
    await simcord_env.restart_bot(make_bot())
    again = new_db(compaction=None)
    await again.open()
    assert again.schema("pets").claim_unique is True
    await again.close()


async def test_a_class_that_declares_otherwise_records_it_and_running_processes_follow(
    simcord_env, new_db, guild, strict, fast_retry
):
    theirs = member_as_declared()  # no word on claim_unique
    p, q, other = await two_processes(simcord_env, new_db, guild, strict, fast_retry, theirs)
    assert q.schema("member").claim_unique is True  # no word on it: the stored value holds
    await q.close()
    await simcord_env.advance_time(1)  # Q's ids run behind P's: its alter comes after P's create
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    q.table(member_as_declared(claim_unique=False))
    await q.open()
    assert q.schema("member").claim_unique is False
    await simcord_env.settle()  # P hears of the alter
    assert p.schema("member").claim_unique is False
    saving = asyncio.ensure_future(Member(key="a", email="x@example.com").save())
    await simcord_env.settle()
    assert saving.done()  # P no longer claims: every process follows the catalog
    await saving
    await q.close()
    await p.close()


async def test_a_bad_claim_unique_is_a_schema_error_and_creates_nothing(simcord_env, new_db):
    class Bad(discobase.Table):
        key: str

        class Settings:
            primary_key = "key"
            claim_unique = "yes"

    db = new_db(compaction=None)
    with pytest.raises(discobase.SchemaError, match="claim_unique"):
        db.table(Bad)
    await db.open()
    with pytest.raises(discobase.SchemaError, match="claim_unique"):
        await db.create_table("pets", {"name": str}, claim_unique=1)  # type: ignore[arg-type]
    assert "pets" not in db.tables
    await db.close()
