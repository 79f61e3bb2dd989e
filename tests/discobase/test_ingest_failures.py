"""Another process's batch reaches this one by the gateway, and applying it needs a download
(an attachment). Until it has been applied the message is not handled, so a compaction that
reads the channel while the download runs applies the message itself before it snapshots
(a failed download: tests/discobase/test_ordering.py)."""

from __future__ import annotations

import asyncio

import discobase
from tests.conftest import make_bot, past_horizon


class Item(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 1  # one channel: the 60 records are one batch, an attachment


async def open_pair(new_db, guild, strict, fast_retry):
    """This process (class tables) and a second one on the same guild (runtime class)."""
    here = new_db(compaction=None)
    here.table(Item)
    await here.open()
    other = await strict.second_process()
    there = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await there.open()
    return here, there


async def fresh_keys(env, new_db) -> set[str]:
    await env.restart_bot(make_bot())
    db = new_db(compaction=None)
    db.table(Item)
    await db.open()
    keys = {item.key for item in await Item.find()}
    await db.close()
    return keys


async def test_a_compaction_applies_a_batch_whose_download_is_still_running(
    simcord_env, new_db, guild, strict, fast_retry
):
    here, there = await open_pair(new_db, guild, strict, fast_retry)
    await Item(key="own", n=0).save()
    strict.hold_gateway()  # the other process's batch reaches this one late
    There = there.tables["item"]
    await There.insert_many([There(key=f"m{i:02}", n=i) for i in range(60)])  # an attachment
    await past_horizon(simcord_env)
    http = simcord_env.bot.http
    real = http.get_from_cdn
    started, slow = asyncio.Event(), asyncio.Event()

    async def get_from_cdn(url: str) -> bytes:
        if not started.is_set():
            started.set()
            await slow.wait()  # the gateway's download is slow
        return await real(url)

    http.get_from_cdn = get_from_cdn
    strict.release_gateway()
    await started.wait()
    await here.compact()  # reads back to the horizon while that download runs
    slow.set()
    await simcord_env.settle()
    assert await Item.count() == 61
    await there.close()
    await here.close()
    assert len(await fresh_keys(simcord_env, new_db)) == 61
