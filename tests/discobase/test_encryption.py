"""Encryption at rest: with ``encryption_key`` every stored message is sealed (AES-GCM, format
version 2), Discord sees only ciphertext, a reader without the key gets a typed error and reads
nothing, a body that was edited or moved is reported and never applied, and ``rotate_key``
re-seals everything in place, surviving a crash midway."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import zlib

import pydantic
import pytest
import simcord

import discobase
from discobase.classes import schema_of
from discobase.codec import Entry, encode_batch, encode_claim, encode_entry
from discobase.transport import Transport
from tests.conftest import past_horizon, rest_calls

OLD, NEW = discobase.EncryptionKey.generate(), discobase.EncryptionKey.generate()
SECRET = "hush-hush"


async def fill(db: discobase.Database) -> None:
    """Two tables: pets (one inline batch, one batch with an attachment, a snapshot, a batch
    after it) and notes over two shards."""
    await db.open()
    pets = await db.create_table(
        "pets", {"name": "str", "legs": "int"}, primary_key="name", shards=1
    )
    await pets.insert(pets(name=SECRET, legs=4))
    await pets.insert_many([pets(name=f"{SECRET}-{i}", legs=i) for i in range(400)])
    notes = await db.create_table("notes", {"text": "str"}, shards=2)
    await notes.insert_many([notes(text=f"{SECRET} note {i}") for i in range(6)])


async def contents(db: discobase.Database) -> dict[str, list[str]]:
    found = {}
    for name in sorted(db.tables):
        found[name] = sorted(
            [r.model_dump_json() async for r in db.tables[name].all()]  # type: ignore[attr-defined]
        )
    return found


def stored(guild: simcord.GuildHandle, env: simcord.Env) -> list[tuple[str, list[bytes]]]:
    """Every message in the storage channels and their threads: content and attachment bytes,
    as Discord has them (read as the bot)."""
    found = []
    for channel in [c for top in guild.channels.values() for c in (top, *top.threads)]:
        for message in channel.history():
            blobs = [env.backend.cdn.get(a.url) or b"" for a in message.attachments]
            found.append((message.content, blobs))
    return found


async def unencrypted(new_db) -> dict[str, list[str]]:
    """Fill the guild without a key (version 1 messages); return what it holds."""
    plain = new_db()
    await fill(plain)
    written = await contents(plain)
    await plain.close()
    return written


def key_ids(guild: simcord.GuildHandle, env: simcord.Env) -> set[str]:
    """The ids of the keys the stored messages are sealed under."""
    return {content.split()[2].removeprefix("key=") for content, _ in stored(guild, env)}


async def test_an_encrypted_database_round_trips_and_discord_sees_only_ciphertext(
    simcord_env, guild, new_db
):
    db = new_db(encryption_key=NEW.text())
    await fill(db)
    await past_horizon(simcord_env)
    await db.compact("pets")
    pets = db.tables["pets"]
    await pets.insert(pets(name="after the snapshot", legs=1))  # type: ignore[call-arg]
    written = await contents(db)
    await db.close()

    messages = stored(guild, simcord_env)
    assert len(messages) >= 6
    assert any(blobs for _, blobs in messages)  # snapshot parts and the big batch: attachments
    for content, blobs in messages:
        assert content.startswith(f"dbs2 sealed key={NEW.id}")
        for text in (content.encode(), *blobs):
            assert SECRET.encode() not in text and b"pets" not in text
        for blob in blobs:
            with pytest.raises(zlib.error):
                zlib.decompress(blob)

    again = new_db(encryption_key=NEW.text())
    await again.open()
    assert await contents(again) == written
    assert len(written["pets"]) == 402 and len(written["notes"]) == 6
    assert (await again.check()).ok


async def test_another_process_with_the_key_follows_writes_live(simcord_env, guild, new_db):
    writer = new_db(encryption_key=NEW.text())
    await fill(writer)
    reader = new_db(encryption_key=NEW.text())
    await reader.open()
    pets = writer.tables["pets"]
    await pets.insert(pets(name="live", legs=7))  # type: ignore[call-arg]
    await simcord_env.settle()
    assert await reader.tables["pets"].get("live") is not None  # type: ignore[attr-defined]
    assert await contents(reader) == await contents(writer)


@pytest.mark.parametrize(
    ("key", "error"),
    [(None, discobase.MissingKeyError), (OLD.text(), discobase.WrongKeyError)],
)
async def test_without_the_key_or_with_a_wrong_one_open_raises_and_writes_nothing(
    simcord_env, guild, new_db, key, error
):
    await fill(new_db(encryption_key=NEW.text()))
    before = stored(guild, simcord_env)
    since = len(simcord_env.http_requests)

    db = new_db(encryption_key=key)
    with pytest.raises(error) as raised:
        await db.open()

    assert raised.value.key_id == NEW.id
    assert isinstance(raised.value, discobase.EncryptionError)
    if key is not None:
        assert raised.value.known == [OLD.id]
    assert not db.is_open
    assert all(call.startswith("GET ") for call in rest_calls(simcord_env, since))
    assert stored(guild, simcord_env) == before


async def test_unencrypted_storage_stays_readable_and_rotate_key_seals_it(
    simcord_env, guild, new_db
):
    written = await unencrypted(new_db)
    # (a table with thread shards has a version 3 catalog event)
    assert all(c.startswith(("dbs1 ", "dbs3 cat ")) for c, _ in stored(guild, simcord_env))

    db = new_db(encryption_key=NEW.text())
    await db.open()
    assert await contents(db) == written  # version 1 messages read with a key too
    report = await db.rotate_key()
    assert report.done and report.current == 0
    assert report.resealed == len(stored(guild, simcord_env))
    assert all(c.startswith(f"dbs2 sealed key={NEW.id}") for c, _ in stored(guild, simcord_env))
    await db.close()

    with pytest.raises(discobase.MissingKeyError):
        await new_db().open()
    reopened = new_db(encryption_key=NEW.text())
    await reopened.open()
    assert await contents(reopened) == written


async def test_rotate_key_interrupted_midway_reads_with_both_keys_and_a_rerun_finishes(
    simcord_env, guild, new_db
):
    first = new_db(encryption_key=OLD.text())
    await fill(first)
    written = await contents(first)
    await first.close()
    # The rotation dies at one message of the pets channel (Discord refuses its edit): the
    # catalog and what it had done before stay under the new key, the rest under the old.
    pets_channel = guild.channels["pets"]
    victim = pets_channel.history()[-1]
    simcord_env.inject_error(
        "PATCH", f"/channels/{pets_channel.id}/messages/{victim.id}", status=400, times=1
    )
    rotating = new_db(encryption_key=f"{NEW.text()},{OLD.text()}")
    await rotating.open()
    with pytest.raises(discobase.DiscordRejectedError):
        await rotating.rotate_key()
    await rotating.close()
    assert key_ids(guild, simcord_env) == {NEW.id, OLD.id}

    with pytest.raises(discobase.WrongKeyError):
        await new_db(encryption_key=NEW.text()).open()
    both = new_db(encryption_key=f"{NEW.text()},{OLD.text()}")
    await both.open()
    assert await contents(both) == written
    report = await both.rotate_key()
    assert report.done and report.resealed > 0 and report.current > 0
    await both.close()

    assert key_ids(guild, simcord_env) == {NEW.id}
    only_new = new_db(encryption_key=NEW.text())
    await only_new.open()
    assert await contents(only_new) == written
    assert (await only_new.rotate_key()).resealed == 0


async def test_an_edited_or_moved_body_is_reported_as_tampered_and_never_applied(
    simcord_env, guild, new_db
):
    db = new_db(encryption_key=NEW.text(), compaction=None)
    await fill(db)
    pets = db.tables["pets"]
    await pets.insert_many([pets(name=f"big {i}", legs=100) for i in range(400)])
    await pets.insert(pets(name="edited", legs=1))  # type: ignore[call-arg]
    await pets.insert(pets(name="moved", legs=2))  # type: ignore[call-arg]
    await db.close()
    raw = Transport(simcord_env.bot)  # the bot's own token, no key: stores what it is given
    pets_channel, notes_channel = guild.channels["pets"], guild.channels["notes"]
    *_, first_big, second_big, edited, moved = pets_channel.history()
    assert first_big.attachments and second_big.attachments
    head, body = edited.content.split("\n")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[10 + 1 :]
    await raw.edit(pets_channel.id, edited.id, f"{head}\n{flipped}")
    # A whole sealed batch posted into another table's channel.
    await raw.send(notes_channel.id, moved.content)
    # The sealed attachment of one message given to another: bound to its own message.
    other_blob = simcord_env.backend.cdn.get(second_big.attachments[0].url)
    await raw.edit(pets_channel.id, first_big.id, first_big.content, other_blob)

    again = new_db(encryption_key=NEW.text(), compaction=None)
    await again.open()
    tampered = [p for p in (await again.check()).problems if p.kind == "tampered"]
    assert {(p.channel_id, p.message_id) for p in tampered if p.channel_id == pets_channel.id} == {
        (pets_channel.id, edited.id),
        (pets_channel.id, first_big.id),
    }
    assert [p.channel_id for p in tampered if p.message_id not in (edited.id, first_big.id)] == [
        notes_channel.id
    ]
    records = await contents(again)
    # The first big batch lost its own attachment and the edited one does not open: neither is
    # applied; the batch whose attachment was copied, and the moved one in its channel, read.
    assert not any('"edited"' in r or f'"{SECRET}-' in r for r in records["pets"])
    assert sum('"big ' in r for r in records["pets"]) == 400
    assert any('"moved"' in r for r in records["pets"])
    assert len(records["notes"]) == 6


def test_keys_are_32_bytes_of_base64_and_never_shown():
    key = discobase.EncryptionKey.generate()
    assert discobase.EncryptionKey.parse(key.text()) == key
    assert discobase.EncryptionKey.parse(key.text().rstrip("=")) == key
    assert key.text() not in repr(key) and key.id in repr(key)
    ring = discobase.KeyRing.of(f"{NEW.text()}, {OLD.text()}")
    assert ring.ids == [NEW.id, OLD.id] and ring.primary == NEW
    for bad in ("", "not base64!", "c2hvcnQ=", NEW.text() + "AAAA"):
        with pytest.raises(discobase.InvalidKeyError):
            discobase.Database(1, encryption_key=bad)


class Member(discobase.Table):
    key: str
    email: str

    class Settings:
        primary_key = "key"
        unique = ["email"]
        claim_unique = True


async def test_unique_claims_are_sealed_and_still_hold(simcord_env, guild, new_db):
    db = new_db(encryption_key=NEW.text(), compaction=None)
    db.table(Member)
    await db.open()
    first = asyncio.ensure_future(Member(key="a", email=f"{SECRET}@x").insert())
    await settle_claims(simcord_env, db)
    await first
    with pytest.raises(discobase.UniqueViolationError):
        await Member(key="b", email=f"{SECRET}@x").insert()
    await db.close()
    assert key_ids(guild, simcord_env) == {NEW.id}
    assert all(SECRET not in content for content, _ in stored(guild, simcord_env))

    again = new_db(encryption_key=NEW.text(), compaction=None)
    again.table(Member)
    await again.open()
    assert [m.key for m in await Member.find()] == ["a"]
    with pytest.raises(discobase.UniqueViolationError):
        await Member(key="c", email=f"{SECRET}@x").insert()


async def test_a_claim_too_long_once_sealed_is_refused_and_sends_nothing(
    simcord_env, guild, new_db
):
    db = new_db(encryption_key=NEW.text(), compaction=None)
    db.table(Member)
    await db.open()
    # Random text barely compresses: the longest email whose plain claim fits one message
    # does not fit once sealed (nonce, tag and base64 added).
    email = base64.b64encode(os.urandom(1500)).decode() + "@x"
    while not fits_a_plain_claim(email):
        email = email[1:]
    posted = len(simcord_env.http_requests)
    with pytest.raises(discobase.ValidationError, match="cannot claim email"):
        await Member(key="a", email=email).insert()
    assert await Member.find() == []
    # Refused before any claim was posted: none (the key's) lingers to refuse a later insert.
    assert not [c for c in rest_calls(simcord_env, posted) if c.startswith("POST")]
    insert = asyncio.get_running_loop().create_task(Member(key="a", email="a@x").insert())
    await settle_claims(simcord_env, db)
    await insert
    assert [m.email for m in await Member.find()] == ["a@x"]
    await db.close()
    again = new_db(encryption_key=NEW.text(), compaction=None)
    again.table(Member)
    await again.open()
    assert [m.email for m in await Member.find()] == ["a@x"]


async def test_a_class_whose_catalog_event_is_too_long_once_sealed_is_refused_before_any_write(
    simcord_env, guild, new_db
):
    # A random default barely compresses: the longest one whose plain catalog event fits
    # one message does not fit once sealed (nonce, tag and base64 added).
    default = secrets.token_urlsafe(1500)
    while (wide := plain_fitting_class(default)) is None:
        default = default[:-1]
    db = new_db(encryption_key=NEW.text(), compaction=None)
    db.table(wide)
    with pytest.raises(discobase.SchemaError, match="too long for one catalog message"):
        await db.open()
    await db.close()
    assert [m for m in stored(guild, simcord_env) if "sealed" in m[0]] == []


def plain_fitting_class(default: str) -> type[discobase.Table] | None:
    """A table class with a str field of this default, or None when its plain catalog event
    would not fit one message."""
    wide = pydantic.create_model("Wide", __base__=discobase.Table, note=(str, default))
    try:
        schema_of(wide)
    except discobase.SchemaError:
        return None
    return wide


def fits_a_plain_claim(email: str) -> bool:
    try:
        encode_claim("email", email, "a", "0" * 16)
    except ValueError:
        return False
    return True


async def settle_claims(env: simcord.Env, db: discobase.Database) -> None:
    """Time passes the horizon margin and the database reads: its claims are settled."""
    await past_horizon(env)
    await db.sync()


async def test_encryption_required_refuses_unencrypted_storage_until_rotate_key_seals_it(
    simcord_env, guild, new_db
):
    written = await unencrypted(new_db)
    before = stored(guild, simcord_env)
    since = len(simcord_env.http_requests)

    db = new_db(encryption_key=NEW.text(), encryption_required=True)
    with pytest.raises(discobase.UnencryptedMessageError) as raised:
        await db.open()
    assert isinstance(raised.value, discobase.EncryptionError)
    assert "rotate-key" in str(raised.value) and "is not encrypted" in str(raised.value)
    assert not db.is_open
    assert all(call.startswith("GET ") for call in rest_calls(simcord_env, since))
    assert stored(guild, simcord_env) == before

    # The way out: rotate with the key, encryption not yet required.
    rotating = new_db(encryption_key=NEW.text())
    await rotating.open()
    assert (await rotating.rotate_key()).done
    await rotating.close()
    required = new_db(encryption_key=NEW.text(), encryption_required=True)
    await required.open()
    assert await contents(required) == written
    await required.close()


@pytest.mark.parametrize("required", [False, True])
async def test_an_unencrypted_batch_of_this_bot_is_applied_only_when_encryption_is_optional(
    simcord_env, guild, new_db, caplog, required
):
    db = new_db(encryption_key=NEW.text(), encryption_required=required)
    await fill(db)
    pets = db.tables["pets"]
    # What a process without the key (the same bot) writes: a version 1 batch.
    line = encode_entry(Entry("plain", {"name": "plain", "legs": 3}))
    batch = encode_batch("0123456789abcdef", [line]).content
    await simcord_env.bot.get_partial_messageable(db.schema("pets").channels[0]).send(batch)
    await simcord_env.settle()
    if not required:
        assert await pets.get("plain") is not None  # type: ignore[attr-defined]
        await db.close()
        return
    assert "plain" not in {r.name async for r in pets.all()}  # type: ignore[attr-defined]
    assert "is not encrypted" in caplog.text
    with pytest.raises(discobase.UnencryptedMessageError):
        await db.sync()
    assert "plain" not in {r.name async for r in pets.all()}  # type: ignore[attr-defined]
    with pytest.raises(discobase.UnencryptedMessageError):
        await new_db(encryption_key=NEW.text(), encryption_required=True).open()
    report = await db.rotate_key()  # seals it: from then on it is storage
    assert report.done and report.resealed == 1
    await db.close()
    reopened = new_db(encryption_key=NEW.text(), encryption_required=True)
    await reopened.open()
    assert await reopened.tables["pets"].get("plain") is not None  # type: ignore[attr-defined]
    await reopened.close()


def test_encryption_required_needs_a_key():
    with pytest.raises(discobase.InvalidKeyError, match="required"):
        discobase.Database(1, encryption_required=True)
