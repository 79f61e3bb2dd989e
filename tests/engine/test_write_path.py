"""The write path encodes each entry once and carries it, with its batch id, to the send."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discobase import codec
from discobase.codec import Entry, decode_body, decode_entries, encode_entry, parse_header
from discobase.engine.core import Write
from discobase.engine.schema import FieldSchema, TableSchema
from discobase.engine.storage_memory import MemoryStorage
from discobase.engine.table import TableEngine
from discobase.engine.writer import split_to_fit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    key=st.text() | st.integers(),
    record=st.none() | st.dictionaries(st.text(), json_values, max_size=4),
    group=st.text(alphabet="0123456789abcdef", min_size=1, max_size=12),
    size=st.integers(min_value=1, max_value=10**6),
)
def test_dropping_group_tags_from_a_line_is_encoding_the_entry_without_them(
    key: Any, record: dict[str, Any] | None, group: str, size: int
) -> None:
    entry = Entry(key, record, group, size)
    assert codec.without_group(entry, encode_entry(entry)) == encode_entry(entry, with_group=False)


def test_a_record_holding_its_own_group_tags_keeps_them() -> None:
    entry = Entry("k", {"x": {"a": 1, "grp": "ab", "gn": 2}}, "ab", 2)
    assert codec.without_group(entry, encode_entry(entry)) == encode_entry(entry, with_group=False)


@dataclass
class Pet:
    name: str


async def test_each_entry_of_a_write_is_encoded_once_and_its_batch_id_is_the_nonce(
    monkeypatch: Any,
) -> None:
    storage = MemoryStorage()
    category = await storage.create_category("discobase")
    schema = TableSchema(
        "pet",
        [FieldSchema("name", "str")],
        channels=[await storage.create_channel("pet", category)],
    )
    table = TableEngine(schema, storage, 10**7, lambda _, data: Pet(**data), asdict)
    await table.load()
    encoded: list[Any] = []
    dumps = codec._dumps

    def counting(value: Any, **options: Any) -> str:
        if isinstance(value, dict) and "rec" in value:
            encoded.append(value["put"])
        return dumps(value, **options)

    def counting_lines(lines: list[dict[str, Any]]) -> list[str]:
        encoded.extend(line["put"] for line in lines)
        return dumps_lines(lines)

    dumps_lines = codec._dumps_lines
    monkeypatch.setattr(codec, "_dumps", counting)
    monkeypatch.setattr(codec, "_dumps_lines", counting_lines)
    sent: list[str | None] = []
    send = storage.send

    async def recording(*args: Any, nonce: str | None = None, **kwargs: Any) -> Any:
        sent.append(nonce)
        return await send(*args, nonce=nonce, **kwargs)

    monkeypatch.setattr(storage, "send", recording)
    await table.write([Write(n, Pet(n), {"name": n}) for n in ("a", "b", "c")], insert=True)
    assert encoded == ["a", "b", "c"]  # the writer dropped the group tags without re-encoding
    [message] = storage.messages[schema.channels[0]].values()
    header = parse_header(message.content)
    assert sent == [header.get("id")]
    body = decode_body(header, message.content, None).decode()
    assert body == "\n".join(
        json.dumps({"put": n, "rec": {"name": n}}, separators=(",", ":")) for n in "abc"
    )
    assert [e.key for e in decode_entries(header, body.encode())] == ["a", "b", "c"]


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text()
)


@given(
    keys=st.lists(st.text() | st.integers(), min_size=1, max_size=4),
    records=st.lists(st.dictionaries(st.text(), scalars, max_size=5), min_size=4, max_size=4),
    group=st.none() | st.text(alphabet="0123456789abcdef", min_size=12, max_size=12),
)
def test_the_lines_of_a_write_read_back_as_pythons_encoder_writes_them(
    keys: list[Any], records: list[dict[str, Any]], group: str | None
) -> None:
    records = records[: len(keys)]
    lines = codec.encode_puts(keys, records, group, len(keys))
    entries = [Entry(k, r, group, len(keys)) for k, r in zip(keys, records, strict=True)]
    tags = {} if group is None else {"grp": group, "gn": len(keys)}
    python = [
        codec._ENCODER.encode({"put": k, "rec": r, **tags})
        for k, r in zip(keys, records, strict=True)
    ]
    assert all(line.isascii() and "\n" not in line for line in lines)
    # The same JSON values, floats to the bit (Python's text of what was read back).
    assert [codec._ENCODER.encode(json.loads(line)) for line in lines] == [
        codec._ENCODER.encode(json.loads(line)) for line in python
    ]
    assert lines == [encode_entry(e) for e in entries]


def test_an_int_longer_than_pythons_limit_is_refused_in_a_write_too() -> None:
    with pytest.raises(ValueError, match="4300"):
        codec.encode_puts(["a", "b"], [{"n": 1}, {"n": 10**4300}], "0123456789ab", 2)


def test_lines_that_compress_poorly_are_cut_so_that_each_message_is_encoded_once() -> None:
    draw = random.Random(7)
    lines = [
        json.dumps({"put": n, "rec": {"blob": f"{draw.getrandbits(800):0200x}"}})
        for n in range(3000)
    ]
    limit = 100_000  # the lines hold about seven times that, and compress about twice
    encoded: list[tuple[int, int]] = []

    def encode(start: int, end: int) -> codec.EncodedMessage:
        encoded.append((start, end))
        return codec.encode_batch("0" * 16, lines[start:end])

    runs = split_to_fit(lines, limit, encode)
    assert [(start, end) for start, end, _ in runs] == encoded  # none encoded in vain
    assert [start for start, _, _ in runs] == [0, *(end for _, end, _ in runs[:-1])]
    assert runs[-1][1] == len(lines)
    for _, _, message in runs:
        assert message.attachment is not None and len(message.attachment) <= limit
    assert len(runs) <= 8  # each message near the limit, not a fraction of it
