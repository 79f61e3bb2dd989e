"""Fault injection on every route the engine uses, during each kind of write, compaction and
load: after a reload every acknowledged write is there exactly once, and a failed write is
either wholly there or wholly absent."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

import discobase
from tests.conftest import make_bot, past_horizon


class Doc(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 2


def flaky_http(
    env, method: str, path: str, error: BaseException, times: int, *, after: bool
) -> dict:
    """Make the bot's HTTP client raise ``error`` for matching requests, ``times`` times;
    with ``after`` the request reaches Discord first (a response lost on the way back).
    SimCord's own ``inject_error`` covers status codes; this covers timeouts and drops."""
    http = env.bot.http
    real = http.request
    left = {"n": times}

    async def request(route: Any, **kwargs: Any) -> Any:
        matches = route.method == method and fnmatch.fnmatch(route.path, path)
        if matches and left["n"] > 0:
            left["n"] -= 1
            if after:
                await real(route, **kwargs)
            raise error
        return await real(route, **kwargs)

    http.request = request
    return left


class Note(discobase.Table):
    text: str

    class Settings:
        shards = 1


async def open_db(new_db):
    db = new_db(compaction=None)
    db.table(Doc)
    await db.open()
    return db


async def reload(env, db, new_db) -> dict[str, int]:
    await db.close()
    await env.restart_bot(make_bot())
    db2 = await open_db(new_db)
    found = {d.key: d.n for d in await Doc.find()}
    await db2.close()
    return found


async def seed() -> dict[str, int]:
    """Six records, and a log with superseded entries for compaction to clean up."""
    await Doc.insert_many([Doc(key=f"s{i}", n=i) for i in range(6)])
    for i in range(3):
        await Doc(key="s0", n=10 + i).save()
        await Doc(key="s5", n=10 + i).save()
    return {**{f"s{i}": i for i in range(6)}, "s0": 12, "s5": 12}


async def do_compact(db) -> None:
    await db.compact()


#: op -> (what it does, the state it leads to from the seeded state)
OPS: dict[
    str, tuple[Callable[[Any], Awaitable[Any]], Callable[[dict[str, int]], dict[str, int]]]
] = {
    "save": (lambda db: Doc(key="new", n=1).save(), lambda m: {**m, "new": 1}),
    "insert_many": (  # spans both shards
        lambda db: Doc.insert_many([Doc(key=f"m{i}", n=i) for i in range(8)]),
        lambda m: {**m, **{f"m{i}": i for i in range(8)}},
    ),
    "update": (lambda db: Doc(key="s1", n=1).update(n=100), lambda m: {**m, "s1": 100}),
    "delete": (
        lambda db: Doc(key="s2", n=2).delete(),
        lambda m: {k: v for k, v in m.items() if k != "s2"},
    ),
    "compact": (do_compact, lambda m: m),
}
ROUTES = {
    "save": [("POST", "/channels/*/messages")],
    "insert_many": [("POST", "/channels/*/messages")],
    "update": [("POST", "/channels/*/messages")],
    "delete": [("POST", "/channels/*/messages")],
    "compact": [("POST", "/channels/*/messages"), ("POST", "/channels/*/messages/bulk-delete")],
}
CASES = [(op, method, path) for op, routes in ROUTES.items() for method, path in routes]


@pytest.mark.parametrize(("op", "method", "path"), CASES)
@pytest.mark.parametrize("fault", ["500x2", "429", "timeout-after-delivery", "connection-reset"])
async def test_transient_faults_are_retried_and_each_write_lands_once(
    simcord_env, new_db, op, method, path, fault
):
    db = await open_db(new_db)
    model = await seed()
    await past_horizon(simcord_env)
    left = {"n": 0}
    if fault == "500x2":
        simcord_env.inject_error(method, path, status=500, times=2)
    elif fault == "429":
        simcord_env.inject_error(method, path, status=429, times=1)
    elif fault == "timeout-after-delivery":
        left = flaky_http(simcord_env, method, path, TimeoutError(), 1, after=True)
    else:
        left = flaky_http(simcord_env, method, path, aiohttp.ClientOSError(), 1, after=False)
    action, expect = OPS[op]
    await action(db)
    expected = expect(model)
    assert {d.key: d.n for d in await Doc.find()} == expected
    # every fault was met (and retried: by the transport, or by discord.py itself for a 500)
    assert not simcord_env.backend.faults and left["n"] == 0
    assert await reload(simcord_env, db, new_db) == expected


@pytest.mark.parametrize(("op", "method", "path"), CASES)
async def test_a_write_that_fails_for_good_is_wholly_there_or_wholly_absent(
    simcord_env, new_db, op, method, path
):
    db = await open_db(new_db)
    model = await seed()
    await past_horizon(simcord_env)
    simcord_env.inject_error(method, path, status=502, times=None)
    with pytest.raises(discobase.DiscordUnavailableError):
        await OPS[op][0](db)
    simcord_env.backend.faults.clear()
    if op != "compact":
        assert {d.key: d.n for d in await Doc.find()} == model  # not applied in memory
    after = await reload(simcord_env, db, new_db)
    assert after == model


@pytest.mark.parametrize(("op", "method", "path"), CASES)
async def test_a_response_lost_for_good_leaves_the_write_whole_or_absent(
    simcord_env, new_db, op, method, path
):
    db = await open_db(new_db)
    model = await seed()
    await past_horizon(simcord_env)
    flaky_http(simcord_env, method, path, TimeoutError(), 100, after=True)
    action, expect = OPS[op]
    with pytest.raises(discobase.DiscordUnavailableError):
        await action(db)
    del simcord_env.bot.http.request  # back to the real client method
    after = await reload(simcord_env, db, new_db)
    # Discord got it (once per attempt): one copy counts, and whole, or none of it
    assert after in (expect(model), model)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/channels/*/messages"), ("POST", "/guilds/*/channels")],
)
async def test_open_and_create_table_retry_and_fail_cleanly(simcord_env, new_db, method, path):
    db = await open_db(new_db)
    await seed()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    simcord_env.inject_error(method, path, status=500, times=2)
    db2 = new_db()
    db2.table(Doc)
    await db2.open()
    assert await Doc.count() == 6
    await db2.create_table("extra", {"a": str})
    simcord_env.inject_error(method, path, status=500, times=None)
    with pytest.raises(discobase.DiscordUnavailableError):
        if method == "GET":
            await db2.sync()
        else:
            await db2.create_table("more", {"a": str})
    simcord_env.backend.faults.clear()
    assert "more" not in db2.tables
    await db2.close()


async def test_attachment_downloads_are_retried(simcord_env, new_db):
    db = await open_db(new_db)
    await Doc(key="big", n=len("x")).save()
    await Doc.insert_many([Doc(key=f"b{i:04}", n=i) for i in range(400)])  # an attachment
    await db.close()
    await simcord_env.restart_bot(make_bot())
    http = simcord_env.bot.http
    real = http.get_from_cdn
    failures = {"n": 2}

    async def get_from_cdn(url: str) -> bytes:
        if failures["n"]:
            failures["n"] -= 1
            raise aiohttp.ServerDisconnectedError()
        return await real(url)

    http.get_from_cdn = get_from_cdn
    db2 = await open_db(new_db)
    assert await Doc.count() == 401
    assert db2.transport.retries["GET attachment"] == 2
    await db2.close()


async def test_drop_table_survives_a_failed_channel_delete(simcord_env, new_db):
    db = await open_db(new_db)
    await db.create_table("gone", {"a": str}, shards=1)
    simcord_env.inject_error("DELETE", "/channels/*", status=500, times=None)
    with pytest.raises(discobase.DiscordUnavailableError):
        await db.drop_table("gone")
    simcord_env.backend.faults.clear()
    assert "gone" not in db.tables  # the catalog says dropped; the channel is left over
    report = await db.check()
    assert [p.kind for p in report.problems] == [discobase.ProblemKind.ORPHAN_CHANNEL]
    assert str(report).splitlines()[1].startswith("orphan-channel: table=None channel=")
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = await open_db(new_db)
    assert "gone" not in db2.tables
    await db2.close()


async def test_a_crash_at_any_point_keeps_acknowledged_writes(simcord_env, new_db):
    """Cancel a running workload at many points (the process dies), restart, compare."""
    for cut in range(0, 60, 7):
        await open_db(new_db)
        acknowledged: dict[str, int] = {}
        attempted: dict[str, int] = {}

        async def writer(i: int, cut=cut, acknowledged=acknowledged, attempted=attempted) -> None:
            for j in range(5):
                key = f"c{cut}-{i}-{j}"
                attempted[key] = j
                await Doc(key=key, n=j).save()
                acknowledged[key] = j

        tasks = [asyncio.create_task(writer(i)) for i in range(10)]
        for _ in range(cut):
            await asyncio.sleep(0)
        for task in [
            *tasks,
            *(t for t in asyncio.all_tasks() if t.get_name().startswith("discobase-")),
        ]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await simcord_env.restart_bot(make_bot())  # no close(): the process died
        db2 = await open_db(new_db)
        found = {d.key: d.n for d in await Doc.find() if d.key.startswith(f"c{cut}-")}
        assert acknowledged.items() <= found.items()
        assert found.items() <= attempted.items()
        await db2.close()
        await simcord_env.restart_bot(make_bot())


async def test_a_refusal_retrying_cannot_fix_is_a_typed_error(simcord_env, new_db):
    db = await open_db(new_db)
    before = len(simcord_env.http_requests)
    simcord_env.inject_error(
        "POST", "/guilds/*/channels", status=400, code=30013,
        message="Maximum number of guild channels reached (500)", times=1,
    )  # fmt: skip
    with pytest.raises(discobase.DiscordRejectedError) as error:
        await db.create_table("one_too_many", {"a": str})
    assert (error.value.status, error.value.code) == (400, 30013)
    assert "500" in str(error.value)
    assert len(simcord_env.http_requests) == before + 1  # not retried
    assert "one_too_many" not in db.tables
    await db.create_table("one_too_many", {"a": str})  # once there is room, it works
    await db.close()


async def test_a_writer_stopped_before_its_first_step_answers_its_writes(simcord_env, new_db):
    """A host cancels every task at shutdown right after a save started the writer, before
    the writer's task ran at all: the save gets an error, the next save starts a new writer
    and lands, and the database closes."""
    db = new_db(compaction=None)
    db.table(Note)
    await db.open()
    save = asyncio.create_task(Note(text="a").save())
    for _ in range(100):  # the save's first steps, up to the writer's task being made
        await asyncio.sleep(0)
        writers = [t for t in asyncio.all_tasks() if t.get_name().startswith("discobase-writer-")]
        if writers:
            break
    [writer] = writers
    assert inspect.getcoroutinestate(writer.get_coro()) == inspect.CORO_CREATED  # not started
    writer.cancel()
    # (wait_for: a safety net; the save used to wait for ever)
    [outcome] = await asyncio.wait_for(asyncio.gather(save, return_exceptions=True), 30)
    assert isinstance(outcome, discobase.NotConnectedError)
    assert "stopped before this write was sent" in str(outcome)
    await asyncio.wait_for(Note(text="b").save(), 30)
    assert [note.text for note in await Note.find()] == ["b"]
    await asyncio.wait_for(db.close(), 30)


@pytest.mark.parametrize("conditional", [False, True], ids=["save", "save-if-revision"])
async def test_a_writer_stopped_mid_batch_answers_every_write_waiting_on_it(
    simcord_env, new_db, monkeypatch, conditional
):
    """A host cancels the writer's task (a shutdown) while it sends the first message of a
    batch of three: the write in that message and those in the later ones each get an error
    that says so, nothing half-done stays, and the next write starts a new writer."""
    monkeypatch.setattr(discobase.database, "MAX_ATTACHMENT", 4096)  # a message holds one note
    db = new_db(compaction=None)
    db.table(Note)
    await db.open()
    notes = [
        Note(text=base64.b64encode(random.Random(i).randbytes(2400)).decode()) for i in range(3)
    ]
    http = simcord_env.bot.http
    real = http.request
    sending = asyncio.Event()

    async def request(route: Any, **kwargs: Any) -> Any:
        if route.method == "POST" and fnmatch.fnmatch(route.path, "/channels/*/messages"):
            sending.set()
            await asyncio.Event().wait()  # an answer that never comes
        return await real(route, **kwargs)

    http.request = request
    saves = [
        asyncio.create_task(note.save(if_revision=0) if conditional else note.save())
        for note in notes
    ]
    await sending.wait()
    [writer] = [t for t in asyncio.all_tasks() if t.get_name().startswith("discobase-writer-")]
    writer.cancel()
    # (wait_for: a safety net; the later writes used to wait for ever)
    outcomes = await asyncio.wait_for(asyncio.gather(*saves, return_exceptions=True), 30)
    assert [type(outcome) for outcome in outcomes] == [discobase.NotConnectedError] * 3
    assert "stopped while this write was being sent" in str(outcomes[0])
    assert all("stopped before this write was sent" in str(o) for o in outcomes[1:])
    assert await Note.count() == 0
    del http.request  # back to the real client method
    await notes[1].save()
    assert [note.text for note in await Note.find()] == [notes[1].text]
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db(compaction=None)
    db2.table(Note)
    await db2.open()
    assert [note.text for note in await Note.find()] == [notes[1].text]
    await db2.close()
