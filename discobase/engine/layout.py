"""Where a database lives in its guild: storage categories, the catalog and table channels.

Storage channels are hidden text channels in the storage category ``name``; a category holds
at most 50 channels, so storage spills over into ``name-2``, ``name-3``... and every storage
category is read. The catalog is the channel ``catalog``; a table's shards are the channel
``table`` and its private threads ``table-1``, ``table-2``... (tables made before threads:
channels of those names). Threads do not count against a guild's 500 channels nor a
category's 50 (discord-api-docs, topics/threads.mdx). Two processes setting up a fresh guild at once can each
make a category or a catalog: the one with the lowest id wins, and the loser's is removed
while it is still empty.
"""

from __future__ import annotations

import logging
from collections import Counter

from .storage import Storage, StoredChannel

__all__ = ("CATALOG_CHANNEL", "CATEGORY_LIMIT", "StorageLayout", "shard_channel_name")

log = logging.getLogger(__name__)
CATALOG_CHANNEL = "catalog"
#: Channels a category may hold.
CATEGORY_LIMIT = 50


def shard_channel_name(table: str, index: int) -> str:
    """The name of a table's shard ``index`` (its channel, or a thread of it)."""
    return table if index == 0 else f"{table}-{index}"


def _storage_number(category: str, name: str) -> int:
    """1 for the category ``name``, n for ``name-n``, 0 for any other."""
    if category == name:
        return 1
    suffix = category[len(name) + 1 :]
    return int(suffix) if category.startswith(f"{name}-") and suffix.isdigit() else 0


class StorageLayout:
    """The storage categories ``category``, ``category-2``... of one guild and their
    channels."""

    def __init__(self, storage: Storage, category: str) -> None:
        self.storage = storage
        self.category = category
        #: Channels this layout deleted: the announcements of their deletion may lag, but
        #: ids are never reused, so they are gone wherever a listing still shows them.
        self._deleted: set[int] = set()

    def _cached(self) -> list[StoredChannel]:
        return [c for c in self.storage.cached_channels() if c.id not in self._deleted]

    async def _listed(self) -> list[StoredChannel]:
        return [c for c in await self.storage.list_channels() if c.id not in self._deleted]

    async def delete(self, channel_id: int) -> None:
        """Delete a channel, thread or category (and remember it is gone)."""
        await self.storage.delete_channel(channel_id)
        self._deleted.add(channel_id)

    def categories(self, channels: list[StoredChannel]) -> list[StoredChannel]:
        """The storage categories among ``channels``, in spill order (number, then id)."""
        numbered = [
            (_storage_number(c.name, self.category), c.id, c)
            for c in channels
            if c.kind == "category" and _storage_number(c.name, self.category) > 0
        ]
        return [c for _, _, c in sorted(numbered, key=lambda item: item[:2])]

    def _text_channels(self, channels: list[StoredChannel]) -> dict[int, str]:
        ids = {c.id for c in self.categories(channels)}
        return {c.id: c.name for c in channels if c.kind == "text" and c.category_id in ids}

    def channels(self) -> dict[int, str]:
        """The storage text channels, id -> name, as last announced (no request)."""
        return self._text_channels(self._cached())

    async def read_channels(self) -> dict[int, str]:
        """Like :meth:`channels`, read from the storage (announcements may lag)."""
        return self._text_channels(await self._listed())

    def threads(self) -> dict[int, int]:
        """The active threads of storage text channels, thread id -> parent id, as last
        announced (archived threads are in no cache: fetch those by id)."""
        cached = self._cached()
        text = self._text_channels(cached)
        return {
            c.id: c.parent_id
            for c in cached
            if c.kind == "thread" and c.parent_id is not None and c.parent_id in text
        }

    async def read_threads(self) -> dict[int, tuple[int, str]]:
        """Every private thread of every storage text channel, active or archived, read from
        the storage: thread id -> (parent id, name)."""
        found: dict[int, tuple[int, str]] = {}
        for parent in await self.read_channels():
            for thread in await self.storage.list_threads(parent):
                found[thread.id] = (parent, thread.name)
        return found

    def catalog_ids(self) -> set[int]:
        return {i for i, name in self.channels().items() if name == CATALOG_CHANNEL}

    async def ensure_category(self) -> None:
        """Create the storage category if there is none.

        Two processes doing this at once can each make one: after creating, the channels are
        read again and, when another category of that name has a lower id, ours is deleted
        while it is still empty (one that is not stays storage: every storage category is
        read, and new channels go to the lowest id)."""
        if self.categories(self._cached()):
            return
        created = await self.storage.create_category(self.category)
        channels = await self._listed()
        rivals = [c.id for c in channels if c.kind == "category" and c.name == self.category]
        in_ours = [c for c in channels if c.category_id == created]
        if min(rivals, default=created) < created and not in_ours:
            log.info("another process made storage category %r first; removing ours", self.category)
            await self.delete(created)

    async def create_channel(self, name: str) -> int:
        """Create a storage text channel in the first storage category with room (a new
        category when all are full); return its id."""
        cached = self._cached()
        # threads name their channel's category but take none of its 50 places
        used = Counter(c.category_id for c in cached if c.kind != "thread")
        category = next(
            (c.id for c in self.categories(cached) if used[c.id] < CATEGORY_LIMIT), None
        )
        if category is None:
            # The announcement of a category may not have arrived yet (one we just made): ask.
            channels = await self._listed()
            listed = self.categories(channels)
            used = Counter(c.category_id for c in channels)
            category = next((c.id for c in listed if used[c.id] < CATEGORY_LIMIT), None)
            if category is None:
                category = await self.storage.create_category(f"{self.category}-{len(listed) + 1}")
        return await self.storage.create_channel(name, category)

    async def create_catalog(self) -> list[int]:
        """Create the catalog channel; return every catalog channel there is then.

        Another process opening this fresh guild at once may make one too: read the storage
        channels again (from the storage: announcements may lag) and settle on the lowest id;
        ours, when it lost and is still empty, is deleted. Any catalog channels left are all
        read."""
        created = await self.create_channel(CATALOG_CHANNEL)
        channels = await self.read_channels()
        # Ours counts even when the listing misses it (it went into a category of our own
        # that the other process's, of lower id, has since replaced)
        catalog_ids = sorted({created} | {i for i, n in channels.items() if n == CATALOG_CHANNEL})
        lost = catalog_ids[0] < created
        if lost and not [m async for m in self.storage.history(created)]:
            log.info("another process made the catalog first; removing ours")
            await self.delete(created)
            catalog_ids.remove(created)
        return catalog_ids or [created]

    async def delete_all(self) -> None:
        """Delete every storage channel, then the storage categories."""
        cached = self._cached()
        for channel_id in self._text_channels(cached):
            await self.delete(channel_id)
        for category in self.categories(cached):
            await self.delete(category.id)
