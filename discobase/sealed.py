"""Encryption at rest, as a layer between the engine and Discord: a :class:`Transport` (the
engine's storage) that seals what is sent and opens what is read.

The engine, its writers and the catalog build and read version 1 messages only. With a key,
:class:`SealedTransport` seals each message whole (content and attachment) right before it is
sent and opens each sealed message of this bot right where it is read (history pages, gateway
events, attachment downloads), so every reader above sees version 1 messages. Without a key it
sends version 1 messages unchanged, and still refuses to read sealed ones: a sealed message
whose key this process lacks raises :class:`~discobase.MissingKeyError` or
:class:`~discobase.WrongKeyError` from the read (an open, a catch-up, a compaction), never
reads as an empty table. A sealed message that does not authenticate reaches the engine
sealed, which reports it as ``tampered`` and skips it, as it does a failed checksum.

With ``required`` (``Database(encryption_required=True)``), a discobase message of this bot
that is not sealed is refused the same way: reading it raises
:class:`~discobase.UnencryptedMessageError`, so nothing unauthenticated is ever applied.
Rotation reads such messages all the same: sealing them is its job.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .codec import (
    SEAL_OVERHEAD,
    FormatProblem,
    MessageTooLongError,
    OpenedContent,
    is_sealed,
    open_attachment,
    open_content,
    parse_header,
    seal_message,
)
from .crypto import KeyRing
from .engine.storage import StoredAttachment, StoredMessage
from .errors import EncryptionError, InvalidKeyError, UnencryptedMessageError
from .problems import ProblemKind
from .transport import RetryPolicy, Transport

if TYPE_CHECKING:
    import discord

__all__ = ("KeyRotation", "OpenedMessage", "SealedAttachment", "SealedTransport")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SealedAttachment(StoredAttachment):
    """The sealed attachment of an opened message: reading it opens it."""

    opened: OpenedContent | None = None


@dataclass(frozen=True)
class OpenedMessage(StoredMessage):
    """A sealed message of this bot, opened: ``content`` is the version 1 message it holds."""

    key_id: str = ""


@dataclass
class KeyRotation:
    """What :meth:`discobase.Database.rotate_key` did: messages sealed again under ``key_id``
    (plain ones included), those that were under it already, those deleted meanwhile (by a
    compaction), and those it could not read (``problems``: left as they were)."""

    key_id: str
    resealed: int = 0
    current: int = 0
    gone: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Every storage message of this bot is sealed under ``key_id``."""
        return not self.problems

    def __str__(self) -> str:
        lines = [
            f"key {self.key_id}: {self.resealed} messages sealed again, {self.current} were "
            f"already, {self.gone} deleted meanwhile"
        ]
        lines += [f"  not sealed again: {problem}" for problem in self.problems]
        return "\n".join(lines)


class SealedTransport(Transport):
    """A :class:`Transport` that seals sent messages under ``keys`` and opens read ones."""

    def __init__(
        self,
        client: discord.Client,
        retry: RetryPolicy | None = None,
        keys: KeyRing | None = None,
        *,
        required: bool = False,
    ) -> None:
        super().__init__(client, retry)
        self.keys = keys if keys is not None else KeyRing()
        if required and not self.keys:
            raise InvalidKeyError("encryption is required, and no key was given")
        #: Refuse discobase messages of this bot that are not sealed.
        self.required = required

    @property
    def overhead(self) -> int:
        """Bytes sealing adds to an attachment (0 without a key)."""
        return SEAL_OVERHEAD if self.keys else 0

    def fits(self, content: str) -> bool:
        """Whether ``content`` alone fits one message once sealed (as it is without a key)."""
        if not self.keys:
            return super().fits(content)
        try:
            seal_message(self.keys, 0, content, None)  # the channel id changes no length
        except MessageTooLongError:
            return False
        return True

    def open(self, message: StoredMessage, *, plain: bool = False) -> StoredMessage:
        """``message`` as the engine reads it: opened if it is a sealed message of this bot.

        Raises :class:`~discobase.MissingKeyError` or :class:`~discobase.WrongKeyError`, and
        :class:`~discobase.UnencryptedMessageError` for a discobase message of this bot that
        is not sealed when encryption is :attr:`required` (unless ``plain``: rotation); a
        message that does not authenticate is returned sealed (readers report it)."""
        if not self.is_ours(message):
            return message
        where = f"message {message.id} of channel {message.channel_id}"
        if not is_sealed(message.content):
            if self.required and not plain and _is_discobase(message.content):
                raise UnencryptedMessageError(where)
            return message
        try:
            opened = open_content(self.keys, message.channel_id, message.content, where)
        except FormatProblem as problem:
            log.warning("%s: %s", where, problem)
            return message
        return OpenedMessage(
            message.id,
            message.channel_id,
            message.author_id,
            opened.content,
            tuple(
                SealedAttachment(a.id, a.filename, a.size, a.url, opened)
                for a in message.attachments
            ),
            message.webhook_id,
            key_id=opened.key_id,
        )

    async def send(
        self,
        channel_id: int,
        content: str,
        attachment: bytes | None = None,
        *,
        filename: str = "body",
        nonce: str | None = None,
    ) -> StoredMessage:
        if not self.keys:
            return await super().send(
                channel_id, content, attachment, filename=filename, nonce=nonce
            )
        # Sealed once, before the first attempt: every retry sends the same bytes.
        sealed = seal_message(self.keys, channel_id, content, attachment)
        stored = await super().send(
            channel_id,
            sealed.content,
            sealed.attachment,
            filename=sealed.filename or filename,
            nonce=nonce,
        )
        return self.open(stored)

    async def history(
        self, channel_id: int, *, before: int | None = None
    ) -> AsyncIterator[StoredMessage]:
        async for message in super().history(channel_id, before=before):
            yield self.open(message)

    async def read_attachment(self, attachment: StoredAttachment) -> bytes | None:
        """The attachment's bytes, opened if it is sealed; raises :class:`FormatProblem`
        (``tampered``) for a sealed one that does not authenticate."""
        data = await super().read_attachment(attachment)
        if data is None or not isinstance(attachment, SealedAttachment):
            return data
        assert attachment.opened is not None
        return open_attachment(self.keys, attachment.opened, data, f"attachment {attachment.id}")

    def listen(
        self,
        on_message: Callable[[StoredMessage], None],
        on_reconnect: Callable[[], Awaitable[object]],
        *,
        guild_id: int | None = None,
    ) -> None:
        def opening(message: StoredMessage) -> None:
            try:
                opened = self.open(message)
            except EncryptionError as error:
                # Left unhandled: the next catch-up or compaction reads it and raises.
                log.error("cannot read a gateway message: %s", error)
                return
            on_message(opened)

        super().listen(opening, on_reconnect, guild_id=guild_id)

    # -- rotation ---------------------------------------------------------------------------

    async def rotate(self, channel_ids: Iterable[int]) -> KeyRotation:
        """Seal every discobase message of this bot in ``channel_ids`` under the first key,
        editing it in place (its id, and so its place in the log, stays).

        Each edit replaces one whole message, so a crash leaves every message readable under
        either key; running it again finishes the work. Raises the key errors when a message
        is sealed under a key the ring lacks (nothing after it is changed)."""
        if not self.keys:
            raise InvalidKeyError("no key was given to seal the storage under")
        report = KeyRotation(self.keys.primary.id)
        for channel_id in channel_ids:
            async for raw in super().history(channel_id):
                if self.is_ours(raw):
                    await self._reseal(raw, report)
        return report

    async def _reseal(self, raw: StoredMessage, report: KeyRotation) -> None:
        where = f"message {raw.id} of channel {raw.channel_id}"
        if raw.content.startswith(f"dbs2 sealed key={report.key_id}"):
            report.current += 1
            return
        message = self.open(raw, plain=True)
        if is_sealed(message.content):
            report.problems.append(f"{where}: tampered (does not authenticate)")
            return
        try:
            header = parse_header(message.content)
        except FormatProblem:
            return  # not a discobase message: never ours to change
        attachment = None
        if header.fields.get("att") == "1":
            try:
                attachment = (
                    await self.read_attachment(message.attachments[0])
                    if message.attachments
                    else None
                )
            except FormatProblem as problem:
                report.problems.append(f"{where}: {problem}")
                return
            if attachment is None:
                report.problems.append(f"{where}: its attachment is gone")
                return
        sealed = seal_message(self.keys, raw.channel_id, message.content, attachment)
        edited = await self.edit(
            raw.channel_id,
            raw.id,
            sealed.content,
            sealed.attachment,
            filename=sealed.filename or "body",
        )
        if edited is None:
            report.gone += 1  # a compaction deleted it meanwhile
            return
        report.resealed += 1


def _is_discobase(content: str) -> bool:
    """Whether ``content`` has a discobase header (of any version or kind)."""
    try:
        parse_header(content)
    except FormatProblem as problem:
        return problem.kind is not ProblemKind.FOREIGN
    return True
