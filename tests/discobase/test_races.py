"""Two processes on one guild whose work overlaps in time: one opens while the other compacts,
a create race whose loser exits before it learns it lost, and a read-then-write whose message
id comes out lower than the version it replaced. Each lost or hid an acknowledged record
before; all run in strict mode (skewed snowflakes, gateway events held)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import discobase
from tests.conftest import past_horizon
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
