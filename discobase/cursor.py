"""What ``find()`` and ``all()`` return: a :class:`Cursor` over the matching records.

``await User.find(...)`` (or ``await cursor.to_list()``) returns them all as a list, as
before. ``async for user in User.find(...)`` reads them a batch at a time (1,000 records, or
``.batch_size(n)``) without copying the table: see :mod:`.engine.cursor` for how a
batch resumes after the table changed, and docs/library.md ("Cursors") for what a reader can
rely on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Sequence
from typing import Any, Protocol, TypeVar

from .errors import ValidationError

__all__ = ("DEFAULT_BATCH", "Cursor")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Records a cursor reads per batch unless told otherwise.
DEFAULT_BATCH = 1000


class Batches(Protocol[T_co]):
    """Where a cursor's records come from: keys a batch at a time, then each record as it is
    when the reader reaches it (None: gone, or no longer matching)."""

    def next(self, count: int) -> list[Any]: ...

    def reach(self, key: Any) -> T_co | None: ...


class Cursor(Coroutine[Any, Any, list[T]], AsyncIterator[T]):
    """The records a query matches. ``await`` it (or ``await cursor.to_list()``) for a list of
    them all; ``async for record in cursor`` reads them a batch at a time (1,000 records, or
    what :meth:`batch_size` set), each as it is when reached. A cursor is read once: awaiting
    it after iterating part of it returns the rest.

    ``everything(*arguments)`` makes the whole list, ``batches(*arguments)`` the source of the
    batches (when iterating starts); ``table`` names the table in errors."""

    # Until reading starts, these stay the class's: awaiting a cursor (the usual find) sets
    # nothing else on it.
    _source: Batches[T] | None = None
    _batch: Sequence[Any] = ()
    _at = 0
    _last_batch = False
    _awaiting: Coroutine[Any, Any, list[T]] | None = None
    _size = DEFAULT_BATCH

    def __init__(
        self,
        everything: Callable[..., list[T]],
        batches: Callable[..., Batches[T]],
        arguments: tuple[Any, ...],
        table: str = "",
    ) -> None:
        self._everything = everything
        self._batches = batches
        self._arguments = arguments
        self._table = table

    def _table_name(self) -> str:
        return self._table

    def batch_size(self, size: int) -> Cursor[T]:
        """Read ``size`` records a batch when iterating (from the next batch on); returns the
        cursor: ``async for user in User.find(...).batch_size(500)``. Raises
        :class:`ValidationError` for anything but a whole number >= 1."""
        if type(size) is not int or size < 1:
            raise ValidationError(
                self._table_name(), f"batch_size must be a whole number >= 1, not {size!r}"
            )
        self._size = size
        return self

    # -- iterating ----------------------------------------------------------------------

    def __aiter__(self) -> Cursor[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            batch, source = self._batch, self._source
            while self._at < len(batch):
                key = batch[self._at]
                self._at += 1
                assert source is not None
                record = source.reach(key)
                if record is not None:
                    return record
            if self._last_batch:
                raise StopAsyncIteration
            if source is None:
                source = self._source = self._batches(*self._arguments)
            else:
                await asyncio.sleep(0)  # between batches, other tasks run
            self._batch = source.next(self._size)
            self._at = 0
            self._last_batch = len(self._batch) < self._size

    # -- as a list ----------------------------------------------------------------------

    async def to_list(self, length: int | None = None) -> list[T]:
        """The records (at most ``length``) as a list: all of them, or the rest of them once
        iterating started. Raises :class:`ValidationError` for a ``length`` that is not None
        or a whole number >= 0."""
        if length is None:
            if self._source is None:
                return self._everything(*self._arguments)
        elif type(length) is not int or length < 0:
            raise ValidationError(
                self._table_name(), f"to_list takes None or a whole number >= 0, not {length!r}"
            )
        elif length == 0:
            return []
        found: list[T] = []
        async for record in self:
            found.append(record)
            if length is not None and len(found) >= length:
                break
        return found

    def __await__(self) -> Generator[Any, None, list[T]]:
        if self._source is None:
            return self._everything(*self._arguments)
        return (yield from self.to_list().__await__())

    # A cursor is also a coroutine (of its list), as find() was: asyncio.create_task,
    # asyncio.run and friends take it.

    def send(self, value: Any) -> Any:
        if self._awaiting is None:
            self._awaiting = self.to_list()
        return self._awaiting.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        if self._awaiting is None:
            self._awaiting = self.to_list()
        if val is None and tb is None:
            return self._awaiting.throw(typ)
        return self._awaiting.throw(typ, val, tb)

    def close(self) -> None:
        if self._awaiting is not None:
            self._awaiting.close()
