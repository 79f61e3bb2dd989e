"""Encryption keys and the authenticated cipher that seals stored messages (no I/O).

A key is 32 random bytes (AES-256), written as base64 (``discobase keygen`` prints one). Its
**key id**, 8 hex digits of a SHA-256 of the key, is stored in the clear beside what the key
sealed, so a reader knows which key to use and keys can rotate. A :class:`KeyRing` holds the
keys of one database: the first seals everything written, every one opens. Sealing is AES-GCM
(from the ``cryptography`` package) with a fresh random 96-bit nonce per body; the associated
data is chosen by the caller (``codec.seal_message`` binds each body to its channel).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import InvalidKeyError, MissingKeyError, WrongKeyError

__all__ = (
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "EncryptionKey",
    "KeyInput",
    "KeyRing",
    "Tampered",
)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class Tampered(Exception):
    """A sealed body does not authenticate: it was edited, cut, or moved from elsewhere."""


@dataclass(frozen=True)
class EncryptionKey:
    """One key: its 32 bytes and its id (never shown: the repr holds the id only)."""

    secret: bytes
    id: str

    @classmethod
    def parse(cls, value: str | bytes) -> EncryptionKey:
        """A key from its base64 text (standard or URL-safe alphabet, padding optional) or
        its 32 raw bytes. Raises :class:`InvalidKeyError`."""
        if isinstance(value, bytes):
            secret = value
        else:
            text = value.strip()
            try:
                secret = base64.b64decode(
                    text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                    validate=True,
                )
            except (binascii.Error, ValueError):
                raise InvalidKeyError("it is not base64") from None
        if len(secret) != KEY_BYTES:
            raise InvalidKeyError(f"it holds {len(secret)} bytes, not {KEY_BYTES}")
        digest = hashlib.sha256(b"discobase key id\0" + secret).hexdigest()
        return cls(secret, digest[:8])

    @classmethod
    def generate(cls) -> EncryptionKey:
        """A new random key."""
        return cls.parse(os.urandom(KEY_BYTES))

    def text(self) -> str:
        """The key as base64 (URL-safe alphabet), as ``discobase keygen`` prints it."""
        return base64.urlsafe_b64encode(self.secret).decode("ascii")

    def __repr__(self) -> str:
        return f"EncryptionKey(id={self.id!r})"


class KeyRing:
    """The keys of one database: ``keys[0]`` seals, each of them opens.

    Built from what ``Database(encryption_key=...)`` takes: None (no encryption), one key
    (base64 text or 32 bytes), text with several keys separated by commas (as
    ``DISCOBASE_ENCRYPTION_KEY`` holds them during a rotation: new key first), or a sequence.
    """

    def __init__(self, keys: Iterable[EncryptionKey] = ()) -> None:
        self.keys = list(keys)
        self._by_id = {key.id: key for key in reversed(self.keys)}

    @classmethod
    def of(cls, value: KeyInput) -> KeyRing:
        if value is None:
            return cls()
        if isinstance(value, KeyRing):
            return value
        if isinstance(value, EncryptionKey):
            return cls([value])
        if isinstance(value, bytes):
            return cls([EncryptionKey.parse(value)])
        if isinstance(value, str):
            parts = [part for part in value.replace(" ", ",").split(",") if part]
            if not parts:
                raise InvalidKeyError("it is empty")
            return cls(EncryptionKey.parse(part) for part in parts)
        return cls(k if isinstance(k, EncryptionKey) else EncryptionKey.parse(k) for k in value)

    def __bool__(self) -> bool:
        return bool(self.keys)

    @property
    def primary(self) -> EncryptionKey:
        """The key that seals."""
        return self.keys[0]

    @property
    def ids(self) -> list[str]:
        return [key.id for key in self.keys]

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        """``nonce || ciphertext || tag`` of ``plaintext`` under the primary key."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.primary.secret).encrypt(nonce, plaintext, associated)

    def open(self, key_id: str, sealed: bytes, associated: bytes, where: str) -> bytes:
        """The plaintext of what :meth:`seal` made under the key ``key_id``.

        Raises :class:`MissingKeyError` (this ring is empty), :class:`WrongKeyError` (no key
        has that id) or :class:`Tampered` (the body or its associated data changed)."""
        key = self._by_id.get(key_id)
        if key is None:
            if not self.keys:
                raise MissingKeyError(key_id, where)
            raise WrongKeyError(key_id, self.ids, where)
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise Tampered("the sealed body is too short")
        try:
            return AESGCM(key.secret).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated
            )
        except InvalidTag:
            raise Tampered("the sealed body does not authenticate") from None


#: What ``Database(encryption_key=...)`` accepts (see :meth:`KeyRing.of`).
KeyInput: TypeAlias = (
    "str | bytes | EncryptionKey | KeyRing | Sequence[str | bytes | EncryptionKey] | None"
)
