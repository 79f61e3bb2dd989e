"""Storage format: records, batches, snapshots and catalog events as message text.

Every discobase message starts with a header line ``dbs1 <kind> key=value ...``; what follows
the header (or the message's one attachment, zlib-compressed) is the body, JSON lines for
batches and snapshot parts, one JSON object for catalog events. An encrypted database seals
each such message whole into a version 2 envelope, ``dbs2 sealed key=<key id>``
(:func:`seal_message`, :func:`open_content`, :func:`open_attachment`). ``docs/format.md`` is
the specification; this module is its only implementation. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import gc
import itertools
import json
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from isal import isal_zlib
from pydantic_core import PydanticSerializationError, from_json, to_json

from .crypto import NONCE_BYTES, TAG_BYTES, KeyRing, Tampered
from .problems import ProblemKind

__all__ = (
    "BODY_COMPRESSION",
    "CONTENT_LIMIT",
    "FORMAT_VERSION",
    "RESHARD_CATALOG_VERSION",
    "SEALED_FILENAME",
    "SEALED_VERSION",
    "SEAL_OVERHEAD",
    "THREADS_CATALOG_VERSION",
    "EncodedMessage",
    "Entry",
    "FormatProblem",
    "Header",
    "MessageTooLongError",
    "OpenedContent",
    "Puts",
    "compress_body",
    "decode_body",
    "decode_catalog_event",
    "decode_claim",
    "decode_entries",
    "decode_puts",
    "decode_release",
    "encode_batch",
    "encode_catalog_event",
    "encode_claim",
    "encode_entry",
    "encode_marker",
    "encode_puts",
    "encode_release",
    "encode_snapshot_part",
    "is_sealed",
    "open_attachment",
    "open_content",
    "parse_header",
    "pause_collector",
    "seal_message",
    "without_group",
)

FORMAT_VERSION = 1
#: The version of a catalog event of a table whose shards are private threads of its channel
#: (format.md, "Versions"): a reader from before threads refuses the catalog (it would take
#: the threads for channels outside the storage category and lose the table) instead of
#: misreading it. Every other message stays version 1.
THREADS_CATALOG_VERSION = 3
#: The version of a catalog ``reshard`` event (format.md, "Versions"): a reader from before
#: resharding refuses the catalog instead of ignoring the event, writing with the old shard
#: count and compacting away records that moved to the new shards.
RESHARD_CATALOG_VERSION = 4
#: The level of attached bodies, compressed by ISA-L (``isal``) into a zlib stream (RFC 1950)
#: that any zlib reads. Its level 1 is four times as fast as zlib's level 1 and compresses
#: records' JSON a tenth smaller.
BODY_COMPRESSION = 1
CONTENT_LIMIT = 2000
_HEADER = re.compile(r"dbs(\d+) ([a-z]+)((?: [a-z]+=[^ \n]*)*)")
_KINDS = ("batch", "cat", "claim", "part", "release", "snap")


class FormatProblem(Exception):
    """A message is not readable discobase data; ``kind`` names the problem for reports."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass(frozen=True)
class Header:
    """The first line of a discobase message."""

    version: int
    kind: str
    fields: dict[str, str]

    def get(self, name: str) -> str:
        try:
            return self.fields[name]
        except KeyError:
            raise FormatProblem(ProblemKind.UNREADABLE, f"header has no {name}=") from None

    def get_int(self, name: str) -> int:
        value = self.get(name)
        if not value.isdigit():
            raise FormatProblem(ProblemKind.UNREADABLE, f"header {name}= is not a number")
        return int(value)


@dataclass(slots=True)
class Entry:
    """One write in a batch: a put of a whole record, or a tombstone (``record is None``).

    Entries of one ``insert_many`` that may land in several messages carry ``group`` and
    ``group_size``; readers apply such entries only once all ``group_size`` are present.
    A snapshot says that a group completed with ``Entry(None, None, group, 0)`` (``done``).
    Entries are not changed once made, but for ``decoded``, which a load fills in for a
    message's records at once (not frozen because that makes them slower to make, and a load
    makes one per record).
    """

    key: Any
    record: dict[str, Any] | None
    group: str | None = None
    group_size: int = 1
    #: The decoded record (a row), when the writer has it already or a load decoded the
    #: message's records together (never encoded).
    decoded: Any = field(default=None, compare=False, repr=False)
    #: The id of the log message the entry came from, when it is not the message that holds
    #: it (snapshot parts record it as ``v``).
    version: int | None = None
    #: For an entry this process wrote: the id of the message it landed in, once that was
    #: acknowledged, unless a later entry of its key in that message overtook it (never
    #: encoded).
    landed: int | None = field(default=None, compare=False, repr=False)


@dataclass
class EncodedMessage:
    """What to send: the content, and the body as an attachment when it does not fit inline."""

    content: str
    attachment: bytes | None = None
    #: The attachment's file name (``body.jsonl.z`` for batches, ``snapshot.jsonl.z`` for parts).
    filename: str = ""
    #: The batch or snapshot id its header carries.
    id: str = ""


def parse_header(content: str) -> Header:
    """Read the header line; raise :class:`FormatProblem` for anything that is not discobase's."""
    first = content.split("\n", 1)[0]
    match = _HEADER.fullmatch(first)
    if match is None:
        raise FormatProblem(ProblemKind.FOREIGN, "not a discobase message")
    version = int(match.group(1))
    if version == SEALED_VERSION:
        if match.group(2) != "sealed":
            raise FormatProblem(
                ProblemKind.UNREADABLE, f"unknown sealed message kind {match.group(2)!r}"
            )
        # Sealed messages are opened where they are read; one that reaches here did not open.
        raise FormatProblem(
            ProblemKind.TAMPERED,
            "a sealed message that does not authenticate (edited, cut or moved)",
        )
    kind = match.group(2)
    if version != FORMAT_VERSION and not (
        version in (THREADS_CATALOG_VERSION, RESHARD_CATALOG_VERSION) and kind == "cat"
    ):
        raise FormatProblem(ProblemKind.UNKNOWN_VERSION, f"format version {version}")
    if kind not in _KINDS:
        raise FormatProblem(ProblemKind.UNREADABLE, f"unknown message kind {kind!r}")
    fields = dict(item.split("=", 1) for item in match.group(3).split())
    return Header(version, kind, fields)


def _header(kind: str, **fields: object) -> str:
    return " ".join([f"dbs{FORMAT_VERSION} {kind}", *(f"{k}={v}" for k, v in fields.items())])


# ASCII only: Discord may normalise non-ASCII text, and escapes survive unchanged.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=True)
#: The types of JSON values that pydantic-core's encoder writes as Python's does (ints up to
#: Python's limit for ints written as text, which a longer output is checked against).
_SCALARS = frozenset({str, int, float, bool, type(None)})
#: The types of keys whose JSON both encoders write alike.
_KEYS = frozenset({str, int})


def _dumps(value: Any, *, scalars: bool = False) -> str:
    """The JSON text of ``value``, ASCII only.

    ``scalars``: ``value`` is an object whose values are :data:`_SCALARS` or objects of them
    with string keys (an entry's line, as a rule). pydantic-core's encoder writes it, several
    times faster than Python's; Python's writes what that one writes differently (text that is
    not ASCII, lone surrogates) and refuses what it refuses (ints longer than its limit)."""
    if scalars:
        try:
            text = to_json(value, inf_nan_mode="constants")
        except PydanticSerializationError:
            return _ENCODER.encode(value)
        digits = sys.get_int_max_str_digits()  # 0: no limit
        if text.isascii() and not (digits and len(text) > digits):
            return text.decode("ascii")
    return _ENCODER.encode(value)


def _crc(body: bytes) -> str:
    return f"{isal_zlib.crc32(body):08x}"


def compress_body(body: bytes) -> bytes:
    """An attached body as it is sent: a zlib stream at :data:`BODY_COMPRESSION`."""
    return isal_zlib.compress(body, BODY_COMPRESSION)


def encode_entry(entry: Entry, *, with_group: bool = True) -> str:
    """One JSON line for ``entry`` (with its ``version`` as ``v`` when it has one)."""
    if entry.group_size == 0:
        return _dumps({"done": entry.group})
    line: dict[str, Any] = (
        {"del": entry.key} if entry.record is None else {"put": entry.key, "rec": entry.record}
    )
    if with_group and entry.group is not None:
        line["grp"] = entry.group
        line["gn"] = entry.group_size
    if entry.version is not None:
        line["v"] = entry.version
    # A record's keys are its fields' names; its values are scalars as a rule.
    scalars = type(entry.key) in _KEYS and (
        entry.record is None or _SCALARS.issuperset(map(type, entry.record.values()))
    )
    return _dumps(line, scalars=scalars)


def encode_puts(
    keys: Sequence[Any], records: Sequence[dict[str, Any]], group: str | None, group_size: int
) -> list[str]:
    """The lines of puts of ``records`` under ``keys`` in ``group`` (if any): what
    :func:`encode_entry` makes of each, in one pass when the records hold only scalars."""
    if group is None:
        lines = [{"put": key, "rec": record} for key, record in zip(keys, records, strict=True)]
    else:
        lines = [
            {"put": key, "rec": record, "grp": group, "gn": group_size}
            for key, record in zip(keys, records, strict=True)
        ]
    values = itertools.chain.from_iterable(map(dict.values, records))
    if _KEYS.issuperset(map(type, keys)) and _SCALARS.issuperset(map(type, values)):
        return _dumps_lines(lines)
    return list(map(_dumps, lines))


def _dumps_lines(lines: list[dict[str, Any]]) -> list[str]:
    """:func:`_dumps` of each line (of scalars and records of scalars), in one pass."""
    try:
        texts = [to_json(line, inf_nan_mode="constants") for line in lines]
    except PydanticSerializationError:  # a lone surrogate: each line alone
        return [_dumps(line, scalars=True) for line in lines]
    digits = sys.get_int_max_str_digits()  # 0: no limit
    return [
        text.decode("ascii")
        if text.isascii() and not (digits and len(text) > digits)
        else _dumps(line)
        for text, line in zip(texts, lines, strict=True)
    ]


def without_group(entry: Entry, line: str) -> str:
    """``line``, the encoding of ``entry``, without its group tags: what
    ``encode_entry(entry, with_group=False)`` returns, without encoding the record again."""
    if entry.group is None or entry.group_size == 0:
        return line
    tags = f',"grp":{_dumps(entry.group)},"gn":{entry.group_size}'
    end = line.rfind(tags)
    if entry.version is not None or end < 0 or end + len(tags) + 1 != len(line):
        return encode_entry(entry, with_group=False)
    return line[:end] + "}"


def _pack(
    kind: str, lines: Sequence[str], filename: str, inline_ok: bool, message_id: str
) -> EncodedMessage:
    body = "\n".join(lines).encode("ascii")
    header = _header(kind, n=len(lines), crc=_crc(body), id=message_id)
    if inline_ok and len(header) + 1 + len(body) <= CONTENT_LIMIT:
        return EncodedMessage(f"{header}\n{body.decode('ascii')}", id=message_id)
    return EncodedMessage(f"{header} att=1", compress_body(body), filename, message_id)


def encode_batch(batch_id: str, entry_lines: Sequence[str]) -> EncodedMessage:
    """A batch message: inline JSON lines when they fit in the content, else an attachment."""
    return _pack("batch", entry_lines, "body.jsonl.z", True, batch_id)


def encode_snapshot_part(snapshot_id: str, entry_lines: Sequence[str]) -> EncodedMessage:
    """A snapshot part: put entries of live records, always as an attachment."""
    return _pack("part", entry_lines, "snapshot.jsonl.z", False, snapshot_id)


def encode_marker(snapshot_id: str, upto: int, count: int, parts: Iterable[int]) -> str:
    """The marker that makes a snapshot visible: its parts, and the last log message it covers."""
    part_list = ",".join(str(part) for part in parts)
    return _header("snap", id=snapshot_id, upto=upto, n=count, parts=part_list)


def encode_catalog_event(event: dict[str, Any]) -> str:
    """A catalog message: one JSON object inline (schemas are small); version 4 for a
    ``reshard``, else version 3 for a table whose shards are threads."""
    body = _dumps(event).encode("ascii")
    header = _header("cat", crc=_crc(body))
    if event.get("op") == "reshard":
        header = header.replace(f"dbs{FORMAT_VERSION} ", f"dbs{RESHARD_CATALOG_VERSION} ", 1)
    elif (event.get("schema") or {}).get("threads"):
        header = header.replace(f"dbs{FORMAT_VERSION} ", f"dbs{THREADS_CATALOG_VERSION} ", 1)
    text = f"{header}\n{body.decode('ascii')}"
    if len(text) > CONTENT_LIMIT:
        raise ValueError("catalog event longer than one message")
    return text


#: What ISA-L raises for a stream it cannot read (its type stubs call it an instance).
_DECOMPRESS_ERROR = cast(type[Exception], isal_zlib.error)


def decode_body(header: Header, content: str, attachment: bytes | None) -> bytes:
    """The body bytes of a message, checked against the header's checksum."""
    if header.fields.get("att") == "1":
        if attachment is None:
            raise FormatProblem(ProblemKind.MISSING_ATTACHMENT, "the body attachment is gone")
        try:  # ISA-L reads any zlib stream, several times as fast as zlib does
            body = isal_zlib.decompress(attachment)
        except _DECOMPRESS_ERROR as error:
            raise FormatProblem(
                ProblemKind.UNREADABLE, f"attachment does not decompress: {error}"
            ) from None
    else:
        body = content.split("\n", 1)[1].encode("utf-8") if "\n" in content else b""
    if _crc(body) != header.get("crc"):
        raise FormatProblem(
            ProblemKind.CHECKSUM, "body does not match its checksum (truncated or edited)"
        )
    return body


#: Bodies of at least this many lines are decoded, and their entries applied, with Python's
#: cyclic garbage collector paused (see :func:`pause_collector`).
BULK = 1000


class pause_collector:
    """Pause the cyclic garbage collector while a body of ``size`` entries is decoded,
    encoded or applied, when it is large.

    Decoding makes several objects per entry; at that rate the collector runs full
    collections that scan the whole heap (every record loaded so far), which cost more than
    the decoding itself. Nothing decoded forms a reference cycle, and the collector runs
    again as soon as the body is done (nothing awaits in between). A class, not a generator:
    every write enters one, most of them small."""

    __slots__ = ("_paused",)

    def __init__(self, size: int) -> None:
        self._paused = size >= BULK and gc.isenabled()

    def __enter__(self) -> None:
        if self._paused:
            gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self._paused:
            gc.enable()


def decode_entries(header: Header, body: bytes) -> list[Entry]:
    """The entries of a batch or snapshot part body."""
    lines = body.split(b"\n") if body else []
    with pause_collector(len(lines)):
        entries = _decode_lines(lines)
    if len(entries) != header.get_int("n"):
        raise FormatProblem(ProblemKind.CHECKSUM, "entry count does not match the header")
    return entries


class Puts(NamedTuple):
    """The entries of a body by column: puts outside any group (keys, stored records, and
    versions, None where the entry carries none), then the entries of other kinds that
    follow the last of them (``rest``: a snapshot's completed groups, as a rule)."""

    keys: list[Any]
    records: list[dict[str, Any]]
    versions: list[int | None]
    rest: list[Entry]


def decode_puts(header: Header, body: bytes) -> Puts | None:
    """The entries of a body whose entries up to the last put are all puts outside any group
    (a snapshot part, as a rule) by column, as :func:`decode_entries` reads them; None for
    any other body, and for one that does not read, which :func:`decode_entries` then
    reads or says why it cannot."""
    lines = body.split(b"\n") if body else []
    with pause_collector(len(lines)):
        try:
            if len(lines) != header.get_int("n"):
                return None
            parsed = [from_json(raw) for raw in lines]
            end = len(parsed)
            while end and type(line := parsed[end - 1]) is dict and line.keys() == {"done"}:
                end -= 1  # the groups a snapshot says completed
            rest = _decode_lines(lines[end:])
            del parsed[end:]
            keys = [line["put"] for line in parsed]
            records = [line["rec"] for line in parsed]
            interned: dict[Any, Any] = {}  # one int object per version, as _decode_lines makes
            versions = [
                None if v is None else interned.setdefault(v, v)
                for v in map(dict.get, parsed, itertools.repeat("v"))
            ]
        except (FormatProblem, ValueError, KeyError, TypeError):
            return None  # not JSON, not an object, not a put, an unhashable v
        if (
            sum(map(len, parsed)) != 2 * len(parsed) + len(parsed) - versions.count(None)
            or not all(type(record) is dict for record in records)
            or not all(type(v) is int and v >= 0 for v in interned)
        ):
            return None  # more than put, rec and v, a record that is not an object, a bad v
    return Puts(keys, records, versions, rest)


def _decode_lines(lines: list[bytes]) -> list[Entry]:
    entries: list[Entry] = []
    #: One int object per version: a snapshot part repeats a few versions many times.
    versions: dict[int, int] = {}
    for raw in lines:
        # pydantic-core's parser is the faster; Python's reads what that one refuses (lone
        # surrogate escapes, for instance), so the two together accept what Python's does.
        try:
            line = from_json(raw)
        except ValueError:
            try:
                line = json.loads(raw)
            except ValueError as error:
                raise FormatProblem(ProblemKind.UNREADABLE, f"entry is not JSON: {error}") from None
        if not isinstance(line, dict):
            raise FormatProblem(ProblemKind.UNREADABLE, "entry is not a JSON object")
        group = line.get("grp")
        group_size = line.get("gn", 1)
        version = line.get("v")
        if version is not None:
            if type(version) is not int or version < 0:
                raise FormatProblem(ProblemKind.UNREADABLE, "entry version is not a message id")
            version = versions.setdefault(version, version)
        if "put" in line and isinstance(line.get("rec"), dict):
            entries.append(Entry(line["put"], line["rec"], group, group_size, None, version))
        elif isinstance(line.get("done"), str):
            entries.append(Entry(None, None, line["done"], 0))
        elif "del" in line:
            entries.append(Entry(line["del"], None, group, group_size, version=version))
        else:
            raise FormatProblem(ProblemKind.UNREADABLE, "entry is neither a put nor a delete")
    return entries


def decode_catalog_event(header: Header, content: str) -> dict[str, Any]:
    """The event of a catalog message."""
    body = decode_body(header, content, None)
    try:
        event = json.loads(body)
    except ValueError as error:
        raise FormatProblem(ProblemKind.UNREADABLE, f"catalog event is not JSON: {error}") from None
    if not isinstance(event, dict) or not isinstance(event.get("table"), str):
        raise FormatProblem(ProblemKind.UNREADABLE, "catalog event has no table")
    schema = event.get("schema")
    threads = isinstance(schema, dict) and schema.get("threads") is True
    if (event.get("op") == "reshard") != (header.version == RESHARD_CATALOG_VERSION):
        raise FormatProblem(
            ProblemKind.UNREADABLE,
            f"a version {header.version} catalog event "
            + ("of a reshard" if header.version != RESHARD_CATALOG_VERSION else "not a reshard"),
        )
    if threads != (header.version == THREADS_CATALOG_VERSION) and event.get("op") not in (
        "drop",
        "reshard",
    ):
        raise FormatProblem(
            ProblemKind.UNREADABLE,
            f"a version {header.version} catalog event "
            + ("of a table with thread shards" if threads else "without thread shards"),
        )
    return event


class MessageTooLongError(ValueError):
    """A message (a claim, or a sealed message) longer than one Discord message: it cannot be
    sent, and nothing was."""


def encode_claim(field: str | None, value: Any, key: Any, by: str) -> str:
    """A claim message: the unique field (None: the key itself), its JSON value, the key of
    the record that takes it and the claiming write's random id, as one JSON object inline.
    Raises :class:`MessageTooLongError` when it does not fit one message."""
    body = _dumps({"field": field, "value": value, "key": key, "by": by}).encode("ascii")
    text = f"{_header('claim', crc=_crc(body))}\n{body.decode('ascii')}"
    if len(text) > CONTENT_LIMIT:
        raise MessageTooLongError("the value and key are too long for one claim message")
    return text


def _inline_json(header: Header, content: str) -> dict[str, Any]:
    """The JSON object a claim or release message holds inline."""
    try:
        found = json.loads(decode_body(header, content, None))
    except ValueError as error:
        raise FormatProblem(ProblemKind.UNREADABLE, f"{header.kind} is not JSON: {error}") from None
    if not isinstance(found, dict):
        raise FormatProblem(ProblemKind.UNREADABLE, f"{header.kind} is not a JSON object")
    return found


def decode_claim(header: Header, content: str) -> tuple[str | None, Any, Any, str]:
    """The (field, value, key, by) of a claim message."""
    claim = _inline_json(header, content)
    if (
        not {"value", "key"} <= claim.keys()
        or not isinstance(claim.get("field"), str | None)
        or not isinstance(claim.get("by"), str)
    ):
        raise FormatProblem(ProblemKind.UNREADABLE, "claim has no field, value, key and writer")
    return claim.get("field"), claim["value"], claim["key"], claim["by"]


def encode_release(by: str) -> str:
    """A release message: the claiming write ``by`` failed and its claims count no more."""
    body = _dumps({"by": by}).encode("ascii")
    return f"{_header('release', crc=_crc(body))}\n{body.decode('ascii')}"


def decode_release(header: Header, content: str) -> str:
    """The claiming write (``by``) a release message releases."""
    release = _inline_json(header, content)
    if not isinstance(release.get("by"), str):
        raise FormatProblem(ProblemKind.UNREADABLE, "release has no writer")
    by: str = release["by"]
    return by


# -- sealed messages (format version 2) ---------------------------------------------------

SEALED_VERSION = 2
#: The file name of a sealed attachment (the same for every kind of message).
SEALED_FILENAME = "sealed.bin"
#: Bytes sealing adds to an attachment: its nonce and its authentication tag.
SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES
_SEALED = re.compile(r"dbs2 sealed key=([0-9a-f]{8})( att=1)?")


@dataclass(frozen=True)
class OpenedContent:
    """What a sealed message's content holds: the version 1 message it seals, the id of the
    key that sealed it, and the associated data its sealed attachment (if any) must carry."""

    content: str
    key_id: str
    attachment_data: bytes


def is_sealed(content: str) -> bool:
    """Whether ``content`` is a sealed (version 2) message."""
    return content.startswith(f"dbs{SEALED_VERSION} ")


def _content_data(channel_id: int, head: str) -> bytes:
    return f"discobase sealed content\0{channel_id}\0{head}".encode("ascii")


def _attachment_data(channel_id: int, content_nonce: bytes) -> bytes:
    return f"discobase sealed attachment\0{channel_id}\0".encode("ascii") + content_nonce


def _seal(keys: KeyRing, channel_id: int, content: str, attachment: bytes | None) -> EncodedMessage:
    head = f"dbs{SEALED_VERSION} sealed key={keys.primary.id}"
    if attachment is not None:
        head += " att=1"
    sealed = keys.seal(zlib.compress(content.encode("utf-8"), 9), _content_data(channel_id, head))
    text = f"{head}\n{base64.b64encode(sealed).decode('ascii')}"
    if attachment is None:
        return EncodedMessage(text)
    data = _attachment_data(channel_id, sealed[:NONCE_BYTES])
    return EncodedMessage(text, keys.seal(attachment, data), SEALED_FILENAME)


def seal_message(
    keys: KeyRing, channel_id: int, content: str, attachment: bytes | None
) -> EncodedMessage:
    """The version 2 form of a version 1 message (``content`` and its attachment) that is
    sent to the channel ``channel_id``, sealed under ``keys.primary``.

    A batch or snapshot part whose sealed content would not fit in a message moves its body
    into the attachment first (as version 1 does for a long body). Raises
    :class:`MessageTooLongError` for any other message that does not fit."""
    sealed = _seal(keys, channel_id, content, attachment)
    if len(sealed.content) > CONTENT_LIMIT and attachment is None and "\n" in content:
        head, body = content.split("\n", 1)
        if parse_header(head).kind in ("batch", "part"):
            body_bytes = zlib.compress(body.encode("utf-8"), 3)
            sealed = _seal(keys, channel_id, f"{head} att=1", body_bytes)
    if len(sealed.content) > CONTENT_LIMIT:
        raise MessageTooLongError("a sealed message longer than one message")
    return sealed


def open_content(keys: KeyRing, channel_id: int, content: str, where: str) -> OpenedContent:
    """Open the content of a sealed message read from the channel ``channel_id``.

    Raises :class:`FormatProblem` (``tampered``: it does not authenticate, e.g. it was edited
    or moved from another channel; ``unreadable``), and :class:`~discobase.MissingKeyError` or
    :class:`~discobase.WrongKeyError` when ``keys`` lack its key (``where`` names it)."""
    head, _, text = content.partition("\n")
    match = _SEALED.fullmatch(head)
    if match is None:
        raise FormatProblem(ProblemKind.UNREADABLE, "a sealed message with a malformed header")
    try:
        sealed = base64.b64decode(text, validate=True)
        plain = keys.open(match.group(1), sealed, _content_data(channel_id, head), where)
    except (ValueError, Tampered) as error:
        raise FormatProblem(ProblemKind.TAMPERED, f"sealed content: {error}") from None
    try:
        inner = zlib.decompress(plain).decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as error:
        raise FormatProblem(
            ProblemKind.UNREADABLE, f"sealed content does not decompress: {error}"
        ) from None
    if is_sealed(inner):
        raise FormatProblem(ProblemKind.UNREADABLE, "a sealed message inside a sealed message")
    return OpenedContent(inner, match.group(1), _attachment_data(channel_id, sealed[:NONCE_BYTES]))


def open_attachment(keys: KeyRing, opened: OpenedContent, attachment: bytes, where: str) -> bytes:
    """The version 1 attachment that a sealed message's attachment holds.

    Raises :class:`FormatProblem` (``tampered``: it does not authenticate or belongs to
    another message) and the key errors of :func:`open_content`."""
    try:
        return keys.open(opened.key_id, attachment, opened.attachment_data, where)
    except Tampered as error:
        raise FormatProblem(ProblemKind.TAMPERED, f"sealed attachment: {error}") from None
