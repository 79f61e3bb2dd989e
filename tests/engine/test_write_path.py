"""The write path encodes each entry once and carries it, with its batch id, to the send."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from discobase import codec
from discobase.codec import Entry, decode_body, decode_entries, encode_entry, parse_header
from discobase.engine.core import Write
from discobase.engine.schema import FieldSchema, TableSchema
from discobase.engine.storage_memory import MemoryStorage
from discobase.engine.table import TableEngine

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

    def counting(value: Any) -> str:
        if isinstance(value, dict) and "rec" in value:
            encoded.append(value["put"])
        return dumps(value)

    monkeypatch.setattr(codec, "_dumps", counting)
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
