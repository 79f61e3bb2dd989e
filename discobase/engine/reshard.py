"""Growing a table's shard count (``Database.reshard``): its records move to their new shards.

A key's shard is ``crc32(key) % shards``. A table of ``n`` shards grows to ``k * n``: the
first ``n`` shards stay, new ones (threads of the table's channel) follow, and every key
either stays in its shard or moves from shard ``i`` to a new shard ``j`` with
``j % n == i``. Keys never move between two old shards, so a process that has not followed
the new layout yet writes and compacts exactly what it did before.

The catalog says so in two steps (format.md, "Resharding"):

1. a ``reshard`` event with the new channels and ``resharding: n`` (the move is under way):
   every process writes with the new count from then on, and reads every shard;
2. the records are moved: a compaction of each old shard first sends each record that now
   belongs to a new shard there (:class:`Misplaced`), **with its version** (``v``, as in a
   snapshot): readers apply it at that version, so a later write of the key, in any shard,
   still wins and a move never undoes one. Only once those are acknowledged does it write
   its snapshot, which leaves them out, and delete the log it folded;
3. a second ``reshard`` event without ``resharding``: the move is done.

A crash anywhere leaves a state that loads to the acknowledged records: before step 1 only
unused threads (reported by ``check``), after it a table whose old shards still hold what
was not moved yet. Running the reshard again resumes it. Whatever the step, a compaction
also moves the keys of other shards that this shard's covered log holds (a process that had
not followed the catalog yet wrote them here), so nothing it folds is lost.
"""

from __future__ import annotations

from typing import Any

from ..codec import Entry, encode_entry
from ..errors import SchemaError
from .core import TableCore
from .schema import TableSchema
from .shard import LogShard
from .writer import Line
from .writes import KeyPlacement

__all__ = ("MAX_SHARDS", "Misplaced", "check_growth")

#: The most shards a table can have (as ``Settings.shards``).
MAX_SHARDS = 16


def check_growth(schema: TableSchema, shards: object) -> int:
    """The new shard count, or :class:`SchemaError` for one the table cannot grow to."""
    if isinstance(shards, bool) or not isinstance(shards, int):
        raise SchemaError(f"shards must be an int, not {shards!r}")
    old = schema.shards
    if shards < old:
        raise SchemaError(
            f"table {schema.name!r} has {old} shards; a table cannot shrink (copy it into a "
            "new table of fewer shards instead)"
        )
    if shards > MAX_SHARDS or shards % old:
        multiples = ", ".join(str(m) for m in range(2 * old, MAX_SHARDS + 1, old))
        raise SchemaError(
            f"table {schema.name!r} has {old} shards: it can grow to a multiple of that up "
            f"to {MAX_SHARDS} ({multiples or 'none'}), not {shards}"
        )
    return shards


class Misplaced:
    """The keys one compaction of ``shard`` leaves out of its snapshot (another shard is
    theirs) whose last entry would go with what it deletes: in the log it folds
    (``covered``), or, while the table grows, in this old shard's snapshot (a key placed
    here under the old count whose version is in no log). They are moved first."""

    def __init__(
        self, core: TableCore, placement: KeyPlacement, shard: LogShard, covered: list[int]
    ) -> None:
        self.core = core
        self.placement = placement
        self.shard = shard
        self.covered = set(covered)
        grows_from = core.schema.resharding
        self.grows_from = (
            grows_from if grows_from is not None and shard.index < grows_from else None
        )
        #: Every log message of the table: a version there is in no snapshot.
        self.logged = (
            {m for s in core.shards for m in s.log_ids} if self.grows_from is not None else set()
        )
        self.found: list[tuple[Any, int]] = []

    def check(self, key: Any, version: int) -> None:
        """``key`` belongs to another shard; note it if its last entry is this shard's."""
        if version in self.covered or (
            self.grows_from is not None
            and version not in self.logged
            and self.placement.index_in(key, self.grows_from) == self.shard.index
        ):
            self.found.append((key, version))

    def moves(self, encode: Any) -> dict[LogShard, list[Line]]:
        """The entries that move them, by the shard each goes to: the record (or the record
        as stored, when it does not decode here), or a delete of a key deleted in the log."""
        state = self.core.state
        moves: dict[LogShard, list[Line]] = {}
        for key, version in self.found:
            record = state.records.get(key)
            if record is not None:
                entry = Entry(key, encode(record), None, 1, record, version)
            elif key in state.undecodable:
                entry = Entry(key, state.undecodable[key], version=version)
            elif version in self.covered:
                entry = Entry(key, None, version=version)
            else:
                continue  # deleted long ago: its delete is in no message any more
            moves.setdefault(self.placement.shard_for(key), []).append((entry, encode_entry(entry)))
        return moves
