"""The transport against a strict Discord: rate-limit waits are not request timeouts, a request
that hangs still times out."""

from __future__ import annotations

import pytest

import discobase
from tests.strict import Strict


class Item(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 1  # one channel: the injected 404 is on it


async def open_items(new_db, strict: Strict) -> discobase.Database:
    """A database whose request timeout is 30 s of the strict model's time."""
    policy = discobase.RetryPolicy(
        attempts=4, base_delay=0.0, max_delay=0.0, timeout=30 * strict.time_scale
    )
    db = new_db(retry=policy, compaction=None)
    db.table(Item)
    await db.open()
    return db


async def test_a_rate_limit_longer_than_the_request_timeout_is_waited_out_not_resent(
    simcord_env, new_db, strict: Strict
):
    db = await open_items(new_db, strict)
    strict.rate_limited_for("message_create", 200)
    route = "POST /channels/{id}/messages"
    calls = db.transport.calls[route]
    await Item(key="a", n=1).save()
    assert db.transport.calls[route] == calls + 1  # one request, waited out, never re-sent
    assert db.transport.retries[route] == 0
    assert [(waited, why) for _, waited, why in strict.waits] == [(200, "429")]
    assert {i.key: i.n for i in await Item.find()} == {"a": 1}
    await db.close()


async def test_a_request_that_hangs_times_out_and_is_retried(simcord_env, new_db, strict: Strict):
    db = await open_items(new_db, strict)
    strict.hang("message_create")
    await Item(key="a", n=1).save()
    assert db.transport.retries["POST /channels/{id}/messages"] == 1
    [(_, waited, why)] = strict.waits
    assert why == "hang" and abs(waited - 30) < 1e-6  # the policy's timeout, per exchange
    assert {i.key: i.n for i in await Item.find()} == {"a": 1}
    await db.close()


async def test_the_bots_own_requests_get_no_timeout_from_the_transport(
    simcord_env, new_db, strict: Strict, guild
):
    db = await open_items(new_db, strict)
    await Item(key="a").save()  # the transport has wrapped the client's request by now
    strict.hang("message_create")
    channel = simcord_env.bot.get_channel(guild.create_text_channel("general").id)
    with pytest.raises(TimeoutError):
        await channel.send("the bot's own message")
    [(_, waited, why)] = strict.waits
    assert why == "hang" and waited == 300  # aiohttp's default, not the database's 30 s
    await db.close()


async def test_a_404_is_missing_storage_where_it_is_needed_and_done_where_it_deletes(
    simcord_env, new_db, guild, caplog
):
    db = new_db(compaction=None)
    db.table(Item)
    await db.open()
    channel = db.tables["item"]._engine().shards[0].channel_id
    route = "POST /channels/{id}/messages"
    sends = db.transport.calls[route]
    simcord_env.inject_error("POST", f"/channels/{channel}/messages", status=404, times=1)
    with pytest.raises(discobase.StorageCorruptError, match="404"):
        await Item(key="a").save()
    assert db.transport.calls[route] == sends + 1  # never retried
    assert await Item.find() == []
    simcord_env.inject_error("DELETE", f"/channels/{channel}", status=404, times=1)
    with caplog.at_level("INFO", logger="discobase.transport"):
        await db.drop_table("item")  # the channel counts as deleted already
    assert f"channel {channel} was already deleted" in caplog.text
    assert "item" not in db.tables
    await db.close()
