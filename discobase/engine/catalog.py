"""The catalog: an append-only log of schema events whose fold is the set of tables."""

from __future__ import annotations

import logging
from typing import Any

from ..codec import FormatProblem, decode_catalog_event, encode_catalog_event, parse_header
from ..errors import SchemaError, UnsupportedFormatError
from ..transport import StoredMessage, Transport
from .schema import TableSchema
from .state import Problem

__all__ = ("Catalog",)

log = logging.getLogger(__name__)


class Catalog:
    """Tables by name, as the fold of ``create``, ``alter`` and ``drop`` events in id order."""

    def __init__(self, transport: Transport, channel_id: int) -> None:
        self.transport = transport
        self.channel_id = channel_id
        self.tables: dict[str, TableSchema] = {}
        self.problems: list[Problem] = []
        self.last_id = 0

    async def load(self) -> None:
        messages = [m async for m in self.transport.history(self.channel_id)]
        for message in reversed(messages):
            self.ingest(message)

    def ingest(self, message: StoredMessage) -> bool:
        """Apply one catalog message; return whether it changed the set of tables."""
        if message.id <= self.last_id:
            return False
        try:
            header = parse_header(message.content)
            if header.kind != "cat":
                raise FormatProblem("unreadable", f"a {header.kind} message in the catalog")
            event = decode_catalog_event(header, message.content)
        except FormatProblem as problem:
            if problem.kind == "unknown-version":
                # A newer discobase changed the schema: reading on could misread every table.
                raise UnsupportedFormatError(problem.detail, "the catalog") from None
            log.warning("catalog: skipping message %s: %s", message.id, problem)
            self.problems.append(
                Problem(None, self.channel_id, message.id, problem.kind, problem.detail)
            )
            return False
        self.last_id = message.id
        return self._apply(event, message.id)

    def _apply(self, event: dict[str, Any], message_id: int) -> bool:
        name, op = event["table"], event.get("op")
        try:
            if op == "create":
                if name in self.tables:
                    # Two processes created the same table at once: the first event wins.
                    self.problems.append(
                        Problem(
                            name,
                            self.channel_id,
                            message_id,
                            "duplicate-create",
                            "a second create of an existing table was ignored",
                        )
                    )
                    return False
                self.tables[name] = TableSchema.from_dict(event["schema"])
            elif op == "alter" and name in self.tables:
                self.tables[name] = TableSchema.from_dict(event["schema"])
            elif op == "drop":
                return self.tables.pop(name, None) is not None
            else:
                raise KeyError(op)
        except (KeyError, TypeError, ValueError) as error:
            self.problems.append(
                Problem(
                    name, self.channel_id, message_id, "unreadable", f"bad catalog event: {error!r}"
                )
            )
            return False
        return True

    async def append(self, op: str, schema: TableSchema) -> None:
        """Write an event and apply it."""
        event: dict[str, Any] = {"op": op, "table": schema.name}
        if op != "drop":
            event["schema"] = schema.to_dict()
        try:
            content = encode_catalog_event(event)
        except ValueError:
            raise SchemaError(
                f"the schema of {schema.name!r} is too long for one catalog message; use fewer fields"
            ) from None
        message = await self.transport.send(self.channel_id, content)
        self.ingest(message)
