"""Two processes on one guild whose work overlaps in time: one opens while the other compacts,
a create race whose loser exits before it learns it lost, and a read-then-write whose message
id comes out lower than the version it replaced. Each lost or hid an acknowledged record
before; all run in strict mode (skewed snowflakes, gateway events held)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import discobase
from discobase.engine import writes
from tests.conftest import make_bot, past_horizon
from tests.discobase.test_ordering import Note, fresh_state, open_with


def pause_between_pages(process: Any, channel_id: int) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``process``'s history reads of ``channel_id`` stop before their second page until
    ``resume`` is set (the time between two page requests); ``paused`` is set when one waits."""
    http = process.bot.http
    real_logs_from = http.logs_from
    paused, resume = asyncio.Event(), asyncio.Event()

    async def logs_from(channel: int, limit: int = 100, before: Any = None, **kw: Any) -> Any:
        if channel == channel_id and before is not None and not resume.is_set():
            paused.set()
            await resume.wait()
        return await real_logs_from(channel, limit, before=before, **kw)

    http.logs_from = logs_from
    return paused, resume


async def note_in_two_processes(new_db, guild, strict, fast_retry):
    """P, this process, with the ``Note`` class; Q, a second process whose ids run 5 ms
    behind P's, with no class (``q.tables["note"]``)."""
    p = await open_with(new_db, Note, compaction=None)
    other = await strict.second_process()
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    return p, q, other


@pytest.mark.parametrize(
    "after_first_snapshot", [150, 99], ids=["marker-mid-page", "marker-ends-page"]
)
async def test_a_process_opening_while_another_compacts_sees_every_record(
    simcord_env, new_db, guild, strict, fast_retry, after_first_snapshot
):
    p = await open_with(new_db, Note, compaction=None)
    expected = {f"b{i}": i for i in range(5)}
    for key, n in expected.items():
        await Note(key=key, n=n).save()
    await past_horizon(simcord_env)
    await p.compact()  # the first snapshot holds b0..b4
    for i in range(after_first_snapshot):  # more log than one history page holds
        await Note(key=f"c{i:03}", n=i).save()
        expected[f"c{i:03}"] = i
    await past_horizon(simcord_env)

    other = await strict.second_process()
    paused, resume = pause_between_pages(other, p.schema("note").channels[0])
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    opening = asyncio.create_task(q.open())
    await paused.wait()  # Q has read the newest page of the log
    assert await p.compact() > 0  # P snapshots everything and deletes the old snapshot and log
    resume.set()
    await opening
    QNote = q.tables["note"]
    assert {r.key: r.n for r in await QNote.find()} == expected
    with pytest.raises(discobase.UniqueViolationError):
        await QNote(key="b0", n=99).insert()
    await simcord_env.settle()
    await past_horizon(simcord_env)
    await q.compact()  # Q loaded the new snapshot: compacting from Q loses nothing either
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == expected


async def test_a_create_race_loser_that_exits_first_keeps_its_writes(
    simcord_env, guild, strict, fast_retry
):
    other = await strict.second_process()  # its ids run 5 ms behind ours
    here = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    there = discobase.Database(guild.id, bot=other.bot, retry=fast_retry)
    await here.open()
    await there.open()
    strict.hold_gateway(process=other)  # `there` hears of `here`'s create late
    Here = await here.create_table("t", {"name": str, "n": int}, primary_key="name")
    lost_channels = here.schema("t").channels
    await Here(name="a", n=1).save()  # acknowledged
    await Here(name="both", n=1).save()
    await Here(name="gone", n=1).save()
    await here.close()  # exits before it could learn that its create lost
    # Made later, but with a lower id: this create wins.
    There = await there.create_table("t", {"name": str, "n": int}, primary_key="name")
    assert there.schema("t").channels != lost_channels
    await simcord_env.advance_time(1)  # past the skew: the writes below are later by id too
    await There(name="gone", n=2).save()
    await There(name="b", n=2).save()
    await There(name="both", n=2).save()  # later than `here`'s write of it
    strict.release_gateway(process=other)
    await simcord_env.settle()
    await there.close()

    await simcord_env.restart_bot(make_bot())
    fresh = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    await fresh.open()
    expected = {"a": 1, "b": 2, "both": 2, "gone": 2}
    assert {r.name: r.n for r in await fresh.tables["t"].find()} == expected
    report = await fresh.check()
    assert {p.kind for p in report.problems} <= {"duplicate-create"}, report
    assert all(simcord_env.bot.get_channel(c) is None for c in lost_channels)
    await fresh.close()

    await simcord_env.restart_bot(make_bot())
    again = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    await again.open()  # nothing left to move: reads only
    assert {r.name: r.n for r in await again.tables["t"].find()} == expected
    assert not [route for route in again.metrics if not route.startswith("GET")]
    await again.close()


async def test_an_update_of_a_record_read_from_another_process_wins_over_it(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, _ = await note_in_two_processes(new_db, guild, strict, fast_retry)
    QNote = q.tables["note"]
    await Note(key="k", n=1).save()
    await simcord_env.settle()  # Q has applied P's write
    record = await QNote.get("k")
    assert record.n == 1
    # Q's message for the update gets an id below P's (Q's worker clock is behind): Q sends
    # it again once its clock has passed P's message; the update returns after that.
    update = asyncio.create_task(record.update(n=2))
    await simcord_env.advance_time(1)
    await update
    assert (await QNote.get("k")).n == 2
    await simcord_env.settle()
    assert (await Note.get("k")).n == 2
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == {"k": 2}


async def test_writes_of_two_processes_that_did_not_see_each_other_resolve_by_id(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, other = await note_in_two_processes(new_db, guild, strict, fast_retry)
    strict.hold_gateway(process=other)  # Q does not see P's write before its own
    await Note(key="k", n=1).save()
    await q.tables["note"](key="k", n=2).save()  # later, but with the lower id: concurrent
    strict.release_gateway(process=other)
    await simcord_env.settle()
    assert (await q.tables["note"].get("k")).n == 1
    assert (await Note.get("k")).n == 1
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == {"k": 1}


async def test_an_update_whose_ids_stay_below_the_version_it_replaced_raises(
    simcord_env, new_db, guild, strict, fast_retry, monkeypatch
):
    monkeypatch.setattr(writes, "RESEND_WAIT", 0.01)  # the simulated clock stands still
    p, q, _ = await note_in_two_processes(new_db, guild, strict, fast_retry)
    QNote = q.tables["note"]
    await Note(key="k", n=1).save()
    await simcord_env.settle()
    record = await QNote.get("k")
    with pytest.raises(discobase.DiscordUnavailableError, match="stayed below"):
        await record.update(n=2)  # every send gets an id below P's: it lost to P's write
    assert (await QNote.get("k")).n == 1
    await simcord_env.settle()
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == {"k": 1}
