"""Background work of the engine: tasks kept referenced, failures logged, awaited on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ("BackgroundTasks",)

log = logging.getLogger(__name__)
T = TypeVar("T")


class BackgroundTasks:
    """Tasks a component starts and does not await at once (compaction, gateway catch-up)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work of %s failed", self.owner, exc_info=task.exception())

    async def wait(self) -> None:
        """Wait for every task started so far (their failures were logged)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
