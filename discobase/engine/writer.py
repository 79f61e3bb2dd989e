"""Group commit: one writer per log channel sends every write queued meanwhile as one batch.

Callers hand the writer their entries, each with its encoded line, and wait (or a waiter that
makes its lines when the writer takes it, and its entries once a message holding them is
acknowledged: :mod:`.saves`). The writer takes everything queued,
packs it into as few messages as the limits allow (inline content up to 2,000 characters,
else one compressed attachment up to the guild's file size limit), sends them one at a time,
and after each acknowledgement calls ``on_commit`` and resolves the callers whose writes the
message held. While a send waits on Discord (rate limits, latency), new writes queue up and
go out together in the next message.

The writer's task lives only while there is something to send: it ends as soon as the queue is
empty, and the next write starts a new one. A host that waits for all of its tasks to finish
(SimCord's settlement, a test, a shutdown) so never waits on an idle writer.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import operator
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..codec import (
    EncodedMessage,
    Entry,
    compress_body,
    encode_batch,
    pause_collector,
    without_group,
)
from ..errors import NotConnectedError
from .storage import Storage, StoredMessage

__all__ = ("BatchWriter", "Line", "Submission", "Waiter")

log = logging.getLogger(__name__)
_ticks = itertools.count(1)
#: What the callers of a writer whose task was cancelled learn (a host stopping its tasks).
_STOPPED = "the writer was stopped before this write was sent"
_STOPPED_SENDING = (
    "the writer was stopped while this write was being sent: Discord may have stored it "
    "(this process then applies it once it sees the message, and a reload shows it)"
)
#: An entry and its encoded line (encoded once, by the caller).
Line = tuple[Entry, str]


class Waiter(Protocol):
    """Who waits on lines queued in a writer: told, for each message that holds some of its
    lines (``start`` to ``end`` of its own), whether it landed."""

    #: The encoded lines (what a message holds), in order; whether entries of an atomic
    #: group are among them (:func:`_untag_whole_groups`).
    texts: list[str]
    grouped: bool

    def prepare(self) -> None:
        """Make the lines, as the writer takes them to send (nothing awaits in between)."""

    def entries(self, start: int, end: int) -> list[Entry]:
        """The entries of lines ``start`` to ``end`` (asked once a message holding them is
        acknowledged, and to pack lines that are ``grouped``)."""

    def waiting(self, start: int, end: int) -> bool:
        """Someone still waits on these lines (else a message holding only them is not sent)."""

    def expect(self) -> None:
        """One more message holds some of the lines (called as they are packed)."""

    def landed(self, start: int, end: int, message_id: int) -> None:
        """These lines are in message ``message_id``, acknowledged and applied."""

    def failed(self, start: int, end: int, error: BaseException) -> None:
        """These lines were not sent (``error``), or their message was not sent since
        nobody waited on it (``error`` a :class:`asyncio.CancelledError`)."""


@dataclass(eq=False)
class Submission:
    """The entries of one caller's write, which lands whole or fails, and the future that
    tells the caller how it went."""

    all_entries: list[Entry]
    texts: list[str]
    future: asyncio.Future[list[int]]
    #: Ids of the messages that hold this submission's entries, as they are acknowledged.
    message_ids: list[int] = field(default_factory=list)
    remaining: int = 0
    grouped: bool = True

    def entries(self, start: int, end: int) -> list[Entry]:
        return self.all_entries[start:end]

    def prepare(self) -> None:
        pass

    def waiting(self, start: int, end: int) -> bool:
        return not self.future.done()

    def expect(self) -> None:
        self.remaining += 1

    def landed(self, start: int, end: int, message_id: int) -> None:
        self.message_ids.append(message_id)
        self.remaining -= 1
        if self.remaining <= 0 and not self.future.done():
            self.future.set_result(self.message_ids)

    def failed(self, start: int, end: int, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class BatchWriter:
    """Sends the writes of one log channel in batches, one message in flight at a time."""

    def __init__(
        self,
        storage: Storage,
        channel_id: int,
        size_limit: int,
        on_commit: Callable[[StoredMessage, str, list[Entry]], None],
        on_failed: Callable[[str], None],
    ) -> None:
        self.storage = storage
        self.channel_id = channel_id
        self.size_limit = size_limit
        self._on_commit = on_commit
        self._on_failed = on_failed
        #: Batch ids sent and not yet acknowledged (their gateway echo waits for the outcome).
        self.in_flight: set[str] = set()
        self._queue: list[Waiter] = []
        #: The task sending the queue; None while there is nothing to send.
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: A message is being sent (new writes wait for the next one).
        self.sending = False
        #: When this writer last started a send, as a tick of a counter shared by all writers.
        self.last_used = 0

    @property
    def forming(self) -> bool:
        """Writes are queued for a message that has not started to send."""
        return bool(self._queue)

    @property
    def last(self) -> Waiter | None:
        """The waiter queued last, while the writer has not taken it to send."""
        return self._queue[-1] if self._queue else None

    def submit(self, lines: list[Line]) -> asyncio.Future[list[int]]:
        """Queue a write; the future resolves to the ids of the messages that hold it."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self.queue(Submission([e for e, _ in lines], [t for _, t in lines], future))
        return future

    def queue(self, waiter: Waiter) -> None:
        """Queue the lines of ``waiter``, which the writer tells how each message went."""
        self._queue.append(waiter)
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"discobase-writer-{self.channel_id}"
            )
            # A task cancelled before its first step never runs _run's cleanup.
            self._task.add_done_callback(self._ended)

    async def flush(self) -> None:
        """Wait until every write queued so far has been sent (or failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Send what is queued. The writer holds no task once its queue is empty."""
        await self.flush()

    async def _run(self) -> None:
        """Send until the queue is empty, then end.

        Between the last look at the queue and clearing ``_task`` nothing awaits, so a write
        submitted meanwhile either is in the queue that loop sends or finds no task and starts
        one: no write is left waiting on a writer that has ended.
        """
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send_all(batch)
        finally:
            self._stopped()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The writer's task is done: if it never ran (cancelled before its first step), do
        what its end would have done, so no write waits on it."""
        if self._task is task:
            self._stopped()

    def _stopped(self) -> None:
        self._task = None
        abandoned, self._queue = self._queue, []
        for waiter in abandoned:  # only when the task was cancelled
            waiter.failed(0, len(waiter.texts), NotConnectedError(_STOPPED))
        self._idle.set()

    def _pack(
        self, batch: list[Waiter]
    ) -> list[tuple[EncodedMessage, list[tuple[Waiter, int, int]]]]:
        """Split the batch into messages within the size limits (each with a fresh batch id),
        and who waits on each (with the part of their lines it holds)."""
        if len(batch) == 1:
            lines = batch[0].texts
        else:
            lines = [line for waiter in batch for line in waiter.texts]
        entries = (
            [entry for waiter in batch for entry in waiter.entries(0, len(waiter.texts))]
            if any(waiter.grouped for waiter in batch)
            else None
        )
        #: Where each waiter's lines end in ``lines`` (they follow each other).
        ends = list(itertools.accumulate(len(waiter.texts) for waiter in batch))

        def encode(start: int, end: int) -> EncodedMessage:
            body = lines[start:end]
            if entries is not None:
                body = _untag_whole_groups(entries[start:end], body)
            return encode_batch(secrets.token_hex(8), body)

        packed = []
        for start, end, message in split_to_fit(lines, self.size_limit, encode):
            first, last = bisect.bisect_right(ends, start), bisect.bisect_right(ends, end - 1)
            holders = []
            for waiter, waiter_end in zip(
                batch[first : last + 1], ends[first : last + 1], strict=True
            ):
                if waiter.texts:
                    begin = waiter_end - len(waiter.texts)
                    waiter.expect()
                    holders.append(
                        (waiter, max(start, begin) - begin, min(end, waiter_end) - begin)
                    )
            packed.append((message, holders))
        return packed

    async def _send_all(self, batch: list[Waiter]) -> None:
        try:
            for waiter in batch:
                waiter.prepare()
            with pause_collector(sum(len(waiter.texts) for waiter in batch)):
                messages = self._pack(batch)
        except Exception as error:  # encoding bug: fail the callers, keep the writer alive
            for waiter in batch:
                waiter.failed(0, len(waiter.texts), error)
            return
        for at, (message, holders) in enumerate(messages):
            if not any(waiter.waiting(start, end) for waiter, start, end in holders):
                for waiter, start, end in holders:
                    waiter.failed(start, end, asyncio.CancelledError())
                continue
            batch_id = message.id
            self.in_flight.add(batch_id)
            self.sending = True
            self.last_used = next(_ticks)
            try:
                stored = await self.storage.send(
                    self.channel_id,
                    message.content,
                    message.attachment,
                    filename=message.filename,
                    nonce=batch_id,
                )
            except BaseException as error:
                self.sending = False
                self.in_flight.discard(batch_id)
                self._on_failed(batch_id)
                if isinstance(error, asyncio.CancelledError):
                    # The task is stopped: its callers were not, and each gets an answer.
                    for waiter, start, end in holders:
                        waiter.failed(start, end, NotConnectedError(_STOPPED_SENDING))
                    for _, later in messages[at + 1 :]:
                        for waiter, start, end in later:
                            waiter.failed(start, end, NotConnectedError(_STOPPED))
                    raise
                for waiter, start, end in holders:
                    waiter.failed(start, end, error)
                continue
            self.sending = False
            self.in_flight.discard(batch_id)
            # The entries live from here to the callers' wake-up only: made, applied and
            # dropped with the collector paused, no collection finds them still alive.
            with pause_collector(sum(end - start for _, start, end in holders)):
                entries = [e for waiter, start, end in holders for e in waiter.entries(start, end)]
                try:
                    self._on_commit(stored, batch_id, entries)
                except Exception:
                    log.exception("applying batch %s failed", stored.id)
                del entries
                for waiter, start, end in holders:
                    waiter.landed(start, end, stored.id)


def _untag_whole_groups(entries: list[Entry], lines: list[str]) -> list[str]:
    """The lines of one message's ``entries``: a group wholly inside the message is atomic by
    itself, so its tags can go."""
    if not any(map(_group_of, entries)):
        return lines
    groups = list(map(_group_of, entries))
    counts = Counter(groups)
    sizes = dict(zip(groups, map(_group_size_of, entries), strict=True))
    whole = {g for g, n in counts.items() if g is not None and n == sizes[g]}
    if not whole:
        return lines
    return [
        without_group(e, line) if e.group in whole else line
        for e, line in zip(entries, lines, strict=True)
    ]


_group_of = operator.attrgetter("group")
_group_size_of = operator.attrgetter("group_size")


#: Raw bytes of lines whose compression tells how many lines a message can take; the share
#: of the limit a run is planned to fill (lines after the sample may compress less well).
_SAMPLE = 1 << 20
_FILL = 0.9


def split_to_fit(
    lines: list[str], size_limit: int, encode: Callable[[int, int], EncodedMessage]
) -> list[tuple[int, int, EncodedMessage]]:
    """Cut ``lines`` into runs that each encode (``encode(start, end)``) within ``size_limit``.

    Compression shrinks JSON several times over, so runs are cut by a raw budget: four times the
    limit, or less when the lines are long enough to need cutting and their first megabyte
    compresses less well (each run is then compressed once, not once too large and again in
    halves). A run whose attachment still comes out too large is halved until it fits.
    """
    #: Raw bytes (lines and newlines) up to and including each line.
    ends = list(itertools.accumulate(len(line) + 1 for line in lines))
    budget = size_limit * 4
    if ends and ends[-1] > size_limit:
        sample = "\n".join(lines[: bisect.bisect_left(ends, _SAMPLE) + 1]).encode()
        ratio = len(sample) / len(compress_body(sample))
        budget = min(budget, int(size_limit * ratio * _FILL))
    runs: list[tuple[int, int]] = []
    start = 0
    while start < len(lines):
        before = ends[start - 1] if start else 0
        # The run takes every line that fits in the budget, and at least one.
        end = max(start + 1, bisect.bisect_right(ends, before + budget, lo=start))
        runs.append((start, end))
        start = end
    result: list[tuple[int, int, EncodedMessage]] = []
    while runs:
        start, end = runs.pop(0)
        message = encode(start, end)
        if (
            message.attachment is not None
            and len(message.attachment) > size_limit
            and end - start > 1
        ):
            middle = (start + end) // 2
            runs[:0] = [(start, middle), (middle, end)]
            continue
        result.append((start, end, message))
    return result
