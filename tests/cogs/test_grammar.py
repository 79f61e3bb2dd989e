"""The command grammars: field lists, queries, sort orders and JSON objects."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discobot.errors import BadInputError
from discobot.grammar import (
    MAX_FIELDS_LENGTH,
    MAX_QUERY_LENGTH,
    Condition,
    coerce_value,
    parse_fields,
    parse_json_object,
    parse_names,
    parse_query,
    parse_sort,
)


def test_fields_take_types_optional_marks_and_defaults() -> None:
    assert parse_fields("name:str, age:int=0, email:str?") == {
        "name": "str",
        "age": ("int", 0),
        "email": ("str?", None),
    }


def test_field_defaults_are_typed_and_may_hold_commas_when_quoted() -> None:
    specs = parse_fields(
        'note:str="hi, you", ratio:float=0.5, ok:bool=yes, tags:json=["a", "b"], '
        "born:datetime?=null, at:datetime=2026-11-26T20:45:00+00:00"
    )
    assert specs["note"] == ("str", "hi, you")
    assert specs["ratio"] == ("float", 0.5)
    assert specs["ok"] == ("bool", True)
    assert specs["tags"] == ("json", ["a", "b"])
    assert specs["born"] == ("datetime?", None)
    assert specs["at"] == ("datetime", datetime.fromisoformat("2026-11-26T20:45:00+00:00"))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "at least one field"),
        ("name", "is not `name:type`"),
        ("name:string", "unknown type `string`"),
        ("1name:str", "is not `name:type`"),
        ("a:str, a:int", "appears twice"),
        ("age:int=old", "not a whole number"),
        ("age:int=null", "only optional fields"),
        ('note:str="open', "never closed"),
        ("tags:json=[1,", "not valid JSON"),
    ],
)
def test_bad_field_lists_say_what_to_fix(text: str, complaint: str) -> None:
    with pytest.raises(BadInputError, match=complaint):
        parse_fields(text)


def test_name_lists_must_name_fields() -> None:
    assert parse_names("a, b", what="indexes", known=["a", "b"]) == ["a", "b"]
    assert parse_names(None, what="indexes", known=["a"]) == []
    with pytest.raises(BadInputError, match="`c`, which is not a field"):
        parse_names("c", what="indexes", known=["a", "b"])


def test_queries_join_conditions_with_and() -> None:
    assert parse_query('name=rex, legs>=3 and email~"@x, y" AND age!=null') == [
        Condition("name", "=", "rex"),
        Condition("legs", ">=", "3"),
        Condition("email", "~", "@x, y"),
        Condition("age", "!=", None),
    ]
    assert parse_query("a<1, b<=2, c>3, d==4") == [
        Condition("a", "<", "1"),
        Condition("b", "<=", "2"),
        Condition("c", ">", "3"),
        Condition("d", "=", "4"),
    ]
    assert parse_query(None) == []
    assert parse_query("  ") == []


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("legs", "cannot read the condition"),
        ("legs=", "has no value"),
        ("legs>null", "null only works"),
        ('name="rex', "never closed"),
        ("=3", "cannot read the condition"),
    ],
)
def test_bad_queries_say_what_to_fix(text: str, complaint: str) -> None:
    with pytest.raises(BadInputError, match=complaint):
        parse_query(text)


def test_sort_orders() -> None:
    known = ["legs", "name"]
    assert parse_sort("legs", known) == "legs"
    assert parse_sort("-legs", known) == "-legs"
    assert parse_sort("legs desc", known) == "-legs"
    assert parse_sort(None, known) is None
    with pytest.raises(BadInputError, match="not a field"):
        parse_sort("-wings", known)
    with pytest.raises(BadInputError, match="one field"):
        parse_sort("legs name", known)


def test_json_objects_are_checked() -> None:
    assert parse_json_object('{"name": "rex", "legs": 4}') == {"name": "rex", "legs": 4}
    with pytest.raises(BadInputError, match="not valid JSON"):
        parse_json_object("{name: rex}")
    with pytest.raises(BadInputError, match="must be a JSON object"):
        parse_json_object("[1, 2]")
    with pytest.raises(BadInputError, match="not a JSON number"):
        parse_json_object('{"x": NaN}')
    with pytest.raises(BadInputError, match="nested"):
        parse_json_object('{"x": ' + "[" * 40 + "]" * 40 + "}")
    with pytest.raises(BadInputError, match="nested"):
        parse_json_object("[" * 100_000 + "]" * 100_000)


def test_values_are_coerced_by_type() -> None:
    assert coerce_value("int", " 42 ", what="x") == 42
    assert coerce_value("bool", "False", what="x") is False
    assert coerce_value("str", '"quoted, text"', what="x") == "quoted, text"
    with pytest.raises(BadInputError, match="`maybe` is not true or false"):
        coerce_value("bool", "maybe", what="x")


@given(st.text(max_size=300))
def test_the_parsers_fail_only_with_bad_input_errors(text: str) -> None:
    for parse in (parse_fields, parse_query, parse_json_object):
        try:
            parse(text)
        except BadInputError as error:
            assert str(error)


def seconds_per_call(parse: Callable[[str], object], text: str) -> float:
    """The best of three rounds of timing ``parse(text)``, each round at least 20 ms long."""
    best = float("inf")
    for _ in range(3):
        calls = 0
        start = time.perf_counter()
        while True:
            with contextlib.suppress(BadInputError):
                parse(text)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= 0.02:
                break
        best = min(best, elapsed / calls)
    return best


GROWTH_BOUND = 20
"""8x the input may take at most this many times as long: linear is 8, quadratic 64."""


@pytest.mark.parametrize(
    ("parse", "make"),
    [
        pytest.param(parse_fields, lambda n: "a:str" + " " * n + "x", id="fields-blanks"),
        pytest.param(parse_fields, lambda n: "a:str=" + " " * n + "x", id="fields-default"),
        pytest.param(parse_fields, lambda n: "a:str?" + " " * n + "=", id="fields-optional"),
        pytest.param(
            parse_fields, lambda n: ", ".join(f"f{i}:int" for i in range(n // 8)), id="fields-many"
        ),
        pytest.param(parse_query, lambda n: "a=" + " " * n + "x", id="query-blanks"),
        pytest.param(parse_query, lambda n: "a" + " " * n + "and", id="query-and"),
        pytest.param(parse_query, lambda n: "a=1" + " and" * (n // 4), id="query-many-ands"),
        pytest.param(parse_query, lambda n: "a" + " " * n + "<", id="query-operator"),
    ],
)
def test_parsing_time_grows_linearly_with_the_input(
    parse: Callable[[str], object], make: Callable[[int], str]
) -> None:
    small = seconds_per_call(parse, make(120))
    large = seconds_per_call(parse, make(960))
    assert large < GROWTH_BOUND * small, f"8x the input took {large / small:.0f}x as long"


@pytest.mark.parametrize(
    ("parse", "prefix", "limit", "what"),
    [
        (parse_fields, "a:str=", MAX_FIELDS_LENGTH, "the field list"),
        (parse_query, "a=", MAX_QUERY_LENGTH, "the query"),
    ],
)
def test_overlong_input_is_refused_before_parsing(
    parse: Callable[[str], object], prefix: str, limit: int, what: str
) -> None:
    parse(prefix + "x" * (limit - len(prefix)))
    with pytest.raises(BadInputError, match=f"^{what} is {limit + 1:,} characters long; at most"):
        parse(prefix + "x" * (limit + 1 - len(prefix)))


def test_and_inside_quotes_is_part_of_the_value() -> None:
    assert parse_query('name="cats and dogs" and legs>2') == [
        Condition("name", "=", "cats and dogs"),
        Condition("legs", ">", "2"),
    ]
