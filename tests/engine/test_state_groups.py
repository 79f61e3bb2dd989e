"""The parts of an ``insert_many`` group in a table's state: held until every part is in, then
applied at once (docs/format.md, "Groups"); a group that completed elsewhere applies nothing."""

from __future__ import annotations

from typing import Any

from discobase.codec import Entry
from discobase.engine.state import Change, TableState
from discobase.problems import ProblemKind


def new_state() -> TableState:
    def decode(key: Any, data: dict[str, Any]) -> tuple[Any, ...]:
        return (key, data["n"])

    return TableState("t", decode, fields=["n"], indexes=["n"], unique=[])


def part(key: str, n: int, group: str = "g", size: int = 5) -> Entry:
    return Entry(key, {"n": n}, group, size, (key, n))


def test_a_done_marker_of_a_group_with_no_part_here_applies_nothing_on_an_empty_table() -> None:
    state = new_state()
    state.apply([Entry(None, None, "g", 0)], 10, channel_id=1)
    assert state.records == {} and state.problems == []
    # The group completed elsewhere: its parts here apply as they come.
    state.apply([part("a", 1)], 11, channel_id=2)
    assert state.records == {"a": ("a", 1)}


def test_parts_from_several_messages_wait_for_the_last_then_apply_with_their_positions() -> None:
    state = new_state()
    changes: list[Change] = []
    state.apply([part("b", 2), part("a", 1)], 20, channel_id=1, changes=changes)
    # A message of parts and another record: its parts are kept one by one.
    state.apply([Entry("x", {"n": 9}, decoded=("x", 9)), part("c", 3)], 21, 2, changes)
    assert set(state.records) == {"x"}
    assert [(e.key, e.version) for e in state.pending_parts(1, 20)] == [("b", 20), ("a", 20)]
    assert [(e.key, e.version) for e in state.pending_parts(2, 21)] == [("c", 21)]
    assert state.pending_parts(2, 20) == []
    state.apply([part("e", 5), part("d", 4)], 22, channel_id=3, changes=changes)
    assert state.records == {
        "x": ("x", 9),
        "a": ("a", 1),
        "b": ("b", 2),
        "c": ("c", 3),
        "d": ("d", 4),
        "e": ("e", 5),
    }
    assert state.pending_parts(1, 30) == []
    assert sorted(state.indexes["n"].equal(3)) == ["c"]
    assert sorted((m, i, k) for m, i, k, before, _ in changes if before is None) == [
        (20, 0, "b"),
        (20, 1, "a"),
        (21, 0, "x"),
        (21, 1, "c"),
        (22, 0, "e"),
        (22, 1, "d"),
    ]
    assert state.done_groups == {"g": {1, 2, 3}}


def test_a_group_still_missing_parts_is_reported_with_how_many_landed() -> None:
    state = new_state()
    state.apply([part("a", 1), part("b", 2)], 30, channel_id=4)
    state.apply([Entry("x", {"n": 9}, decoded=("x", 9)), part("c", 3)], 31, 5)
    state.report_incomplete_groups()
    [problem] = state.problems
    assert problem.kind is ProblemKind.INCOMPLETE_GROUP
    assert "3 of 5 entries landed" in problem.detail
    assert set(state.records) == {"x"}


def test_a_group_that_repeats_a_key_applies_entry_by_entry_the_last_one_winning() -> None:
    state = new_state()
    state.apply([Entry("x", {"n": 9}, decoded=("x", 9))], 40, channel_id=1)
    # Parts a snapshot carried (each with the version of its log entry), then one from the log.
    carried = [
        Entry("a", {"n": 1}, "g", 3, ("a", 1), version=41),
        Entry("b", {"n": 2}, "g", 3, ("b", 2), version=41),
    ]
    state.apply(carried, 50, channel_id=1)
    state.apply([part("a", 3, size=3)], 42, channel_id=2)
    assert state.records == {"x": ("x", 9), "a": ("a", 3), "b": ("b", 2)}
    assert state.versions == {"x": 40, "a": 42, "b": 41}
    assert not state.indexes["n"].equal(1) and list(state.indexes["n"].equal(3)) == ["a"]
