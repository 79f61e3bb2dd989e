"""The catalog: an append-only log of schema events whose fold is the set of tables.

The fold trusts nothing it reads: an event counts only when the bot's own user wrote it (not a
webhook), its schema passes the same validation as a new table's, and the channels of a
``create`` belong to this guild's storage category (a table whose shards are threads: its
first channel does, and the others are private threads of that channel). Anything else is skipped and reported by
``Database.check()``, never fatal. Events are kept by message id and folded in id order, so an
event that arrives late (another process's, over the gateway) lands in its place.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..codec import FormatProblem, decode_catalog_event, encode_catalog_event, parse_header
from ..errors import SchemaError, UnsupportedFormatError
from ..problems import Problem, ProblemKind
from .schema import TableSchema
from .storage import Storage, StoredMessage

__all__ = ("Catalog",)
#: The operations that give a table its channels.
_LAYOUTS = ("create", "reshard")

log = logging.getLogger(__name__)


class Catalog:
    """Tables by name, as the fold of ``create``, ``alter`` and ``drop`` events in id order.

    ``channel_ids`` are the guild's catalog channels: normally one; two processes opening a
    fresh guild at once can each make one, so the fold reads them all and new events go to
    the lowest id. ``storage_channels`` returns the ids of the channels in the guild's storage
    category (a ``create`` naming any other channel is refused), ``thread_parents`` the known
    threads of those channels (thread id -> parent id); ``check_schema`` raises
    :class:`SchemaError` for a schema this process cannot serve (e.g. a default that does not
    fit its type).
    """

    def __init__(
        self,
        storage: Storage,
        channel_ids: Iterable[int],
        *,
        storage_channels: Callable[[], set[int]] | None = None,
        thread_parents: Callable[[], Mapping[int, int]] | None = None,
        check_schema: Callable[[TableSchema], object] | None = None,
    ) -> None:
        self.storage = storage
        self.channel_ids = sorted(set(channel_ids))
        self.tables: dict[str, TableSchema] = {}
        #: Table name -> the message id of the ``create`` that made the current table.
        self.created_by: dict[str, int] = {}
        #: Table name -> later ``create`` events of the current table, which lost a race to
        #: the first (their channels may hold writes of a process that never learnt it lost).
        self.lost_creates: dict[str, list[TableSchema]] = {}
        self.problems: list[Problem] = []
        self.last_id = 0
        self._storage_channels = storage_channels
        #: Thread id -> parent, as the last fold saw them.
        self._threads: dict[int, int] = {}
        self._thread_parents = thread_parents
        self._check_schema = check_schema
        #: Readable events by message id: (channel, event).
        self._events: dict[int, tuple[int, dict[str, Any]]] = {}
        self._skipped: set[int] = set()
        #: Problems of the current fold (recomputed by each fold).
        self._fold_problems: list[Problem] = []
        #: Channels named by refused creates that this process does not know: may be
        #: another process's new channels whose gateway event has not arrived yet.
        self.unknown_channels: set[int] = set()
        #: Table name -> why its ``create`` was refused for its channels (a shard deleted by
        #: hand, or channels not this guild's), when no later event replaced or dropped it.
        self.unusable: dict[str, str] = {}

    @property
    def channel_id(self) -> int:
        """The catalog channel new events go to."""
        return self.channel_ids[0]

    def add_channel(self, channel_id: int) -> None:
        if channel_id not in self.channel_ids:
            self.channel_ids = sorted({*self.channel_ids, channel_id})

    async def load(self) -> None:
        """Read every catalog channel in full and fold it."""
        for channel_id in self.channel_ids:
            async for message in self.storage.history(channel_id):
                self._read(message)
        self.fold()

    def ingest(self, message: StoredMessage) -> bool:
        """Apply one catalog message; return whether it changed the set of tables."""
        if not self._read(message):
            return False
        return self.fold()

    def _read(self, message: StoredMessage) -> bool:
        """Keep one message's event; return whether it is new and readable."""
        if message.id in self._events or message.id in self._skipped:
            return False
        self.last_id = max(self.last_id, message.id)
        try:
            if not self.storage.is_ours(message):
                raise FormatProblem(
                    ProblemKind.FOREIGN_AUTHOR,
                    "written by another user or a webhook, not by this bot",
                )
            header = parse_header(message.content)
            if header.kind != "cat":
                raise FormatProblem(
                    ProblemKind.UNREADABLE, f"a {header.kind} message in the catalog"
                )
            event = decode_catalog_event(header, message.content)
        except FormatProblem as problem:
            if problem.kind is ProblemKind.UNKNOWN_VERSION:
                # Only a process with this bot's token writes here: a newer discobase changed
                # the schema, and reading on could misread every table.
                raise UnsupportedFormatError(problem.detail, "the catalog") from None
            log.warning("catalog: skipping message %s: %s", message.id, problem)
            self._skipped.add(message.id)
            self.problems.append(
                Problem(None, message.channel_id, message.id, problem.kind, problem.detail)
            )
            return False
        self._events[message.id] = (message.channel_id, event)
        return True

    def fold(self) -> bool:
        """Recompute the tables from every event in id order; return whether they changed."""
        before = {name: schema.to_dict() for name, schema in self.tables.items()}
        storage = self._storage_channels() if self._storage_channels is not None else None
        if storage is not None:
            self._threads = dict(self._thread_parents()) if self._thread_parents else {}
        self.tables = {}
        self.created_by = {}
        self.lost_creates = {}
        self.unknown_channels = set()
        self.unusable = {}
        self.problems = [p for p in self.problems if p not in self._fold_problems]
        self._fold_problems = []
        # A create refused for its channels, then dropped, is history: the drop deleted them.
        outside_creates: dict[str, list[Problem]] = {}
        for message_id in sorted(self._events):
            channel_id, event = self._events[message_id]
            refusal = self._apply(event, storage, message_id)
            if event.get("op") == "drop":
                outside_creates.pop(event["table"], None)
            if refusal is not None:
                kind, detail = refusal
                problem = Problem(event.get("table"), channel_id, message_id, kind, detail)
                if event.get("op") in _LAYOUTS and kind is ProblemKind.FOREIGN_CHANNEL:
                    outside_creates.setdefault(event["table"], []).append(problem)
                else:
                    self._fold_problems.append(problem)
        for name, refused in outside_creates.items():
            self._fold_problems += refused
            self.unknown_channels.update(
                c
                for e in self._events.values()
                if e[1].get("table") == name and e[1].get("op") in _LAYOUTS
                for c in _channel_ids(e[1])
                if storage is not None and c not in storage and c not in self._threads
            )
        self.unusable = {
            name: refused[-1].detail
            for name, refused in outside_creates.items()
            if name not in self.tables
        }
        self.problems += self._fold_problems
        return before != {name: schema.to_dict() for name, schema in self.tables.items()}

    def _apply(
        self, event: dict[str, Any], storage: set[int] | None, message_id: int
    ) -> tuple[ProblemKind, str] | None:
        """Apply one event to the fold; return (problem kind, detail) when it is refused."""
        name, op = event["table"], event.get("op")
        if op == "drop":
            self.tables.pop(name, None)
            self.lost_creates.pop(name, None)
            return None
        if op not in ("create", "alter", "reshard"):
            return ProblemKind.UNREADABLE, f"unknown catalog operation {op!r}"
        try:
            schema = TableSchema.from_dict(event["schema"]).validate()
            if schema.name != name:
                raise SchemaError(f"the event is for {name!r} but its schema names {schema.name!r}")
            if len(schema.channels) != schema.shards or len(set(schema.channels)) != len(
                schema.channels
            ):
                raise SchemaError(f"{schema.shards} shards need as many distinct channels")
            if self._check_schema is not None:
                self._check_schema(schema)
        except (KeyError, TypeError, ValueError, AttributeError, SchemaError) as error:
            return ProblemKind.UNREADABLE, f"bad catalog schema: {error}"
        current = self.tables.get(name)
        if op == "alter":
            if current is None:
                return None  # an alter of a dropped table: nothing to do
            if (schema.channels, schema.threads) != (current.channels, current.threads):
                return (
                    ProblemKind.FOREIGN_CHANNEL,
                    "an alter may not move a table to other channels",
                )
            schema.resharding = current.resharding  # only a reshard starts or ends one
            self.tables[name] = schema
            return None
        if op == "reshard":
            return None if current is None else self._reshard(current, schema, storage)
        if current is not None:
            # Two processes created the same table at once: the first event wins.
            self.lost_creates.setdefault(name, []).append(schema)
            return ProblemKind.DUPLICATE_CREATE, "a second create of an existing table was ignored"
        if storage is not None:
            outside = self._outside(schema, storage)
            if outside:
                return outside
        self.tables[name] = schema
        self.created_by[name] = message_id
        return None

    def _reshard(
        self, current: TableSchema, event: TableSchema, storage: set[int] | None
    ) -> tuple[ProblemKind, str] | None:
        """Apply a ``reshard``: its start (``resharding``, the count it grows from) gives the
        table more shards; its end (no ``resharding``, same channels) says the records moved.
        Each must follow the table's current layout (a reshard that lost a race to another
        does not); only the layout changes, the rest of the schema stays the table's."""
        name, old = current.name, len(current.channels)
        if event.resharding is None:
            if current.resharding is None or event.channels != current.channels:
                return ProblemKind.UNREADABLE, "the end of a reshard that is not under way"
            self.tables[name] = dataclasses.replace(current, resharding=None)
            return None
        if (
            current.resharding is not None
            or event.resharding != old
            or event.channels[:old] != current.channels
            or event.threads != (current.threads or old == 1)
        ):
            return (
                ProblemKind.UNREADABLE,
                f"a reshard of {old} shards into {event.shards} that does not follow the "
                "table's layout (another reshard came first)",
            )
        if storage is not None:
            outside = self._outside(event, storage)
            if outside:
                # Part of the table is not there (deleted by hand): it cannot be read whole.
                del self.tables[name]
                return outside
        self.tables[name] = dataclasses.replace(
            current,
            shards=event.shards,
            channels=list(event.channels),
            threads=event.threads,
            resharding=old,
        )
        return None

    def _outside(self, schema: TableSchema, storage: set[int]) -> tuple[ProblemKind, str] | None:
        """Why a ``create``'s channels are not this guild's storage, if they are not."""
        channels = schema.channels[:1] if schema.threads else schema.channels
        outside = [c for c in channels if c not in storage]
        if outside:
            return (
                ProblemKind.FOREIGN_CHANNEL,
                f"channels {outside} are not in this guild's storage category",
            )
        parent = schema.channels[0]
        strays = [
            t for t in schema.channels[1:] if schema.threads and self._threads.get(t) != parent
        ]
        if strays:
            return (
                ProblemKind.FOREIGN_CHANNEL,
                f"threads {strays} are not private threads of its channel {parent} "
                "(deleted, or another channel's)",
            )
        return None

    async def append(self, op: str, schema: TableSchema) -> StoredMessage:
        """Write an event and apply it; return its message."""
        event: dict[str, Any] = {"op": op, "table": schema.name}
        if op != "drop":
            event["schema"] = schema.to_dict()
        try:
            content = encode_catalog_event(event)
        except ValueError:
            raise SchemaError(
                f"the schema of {schema.name!r} is too long for one catalog message; use fewer fields"
            ) from None
        message = await self.storage.send(self.channel_id, content)
        self.ingest(message)
        return message


def _channel_ids(event: dict[str, Any]) -> list[int]:
    try:
        return [int(c) for c in event["schema"]["channels"]]
    except (KeyError, TypeError, ValueError):
        return []
