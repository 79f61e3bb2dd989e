"""Requests whose outcome is unknown are safe to repeat: every message send carries its own
nonce with ``enforce_nonce`` (Discord answers a repeated nonce with the earlier message), and
channel creates are followed by a read that adopts what was made."""

from __future__ import annotations

import json
from typing import Any

import simcord

import discobase
from tests.conftest import make_bot


def enforce_nonce(env: simcord.Env) -> list[str]:
    """Model Discord's ``enforce_nonce`` on the bot's HTTP client (SimCord ignores it): a
    message create whose nonce was used before in that channel returns the earlier message
    and creates nothing. Returns the nonces sent, in order."""
    http = env.bot.http
    real = http.request
    earlier: dict[tuple[str, str], Any] = {}
    sent: list[str] = []

    async def request(route: Any, **kwargs: Any) -> Any:
        if route.method != "POST" or not route.path.endswith("/messages"):
            return await real(route, **kwargs)
        payload = kwargs.get("json")
        for part in kwargs.get("form") or ():
            if part["name"] == "payload_json":
                payload = json.loads(part["value"])
        nonce = (payload or {}).get("nonce")
        key = (str(route.channel_id), str(nonce))
        if nonce is not None:
            sent.append(str(nonce))
        if nonce is not None and payload.get("enforce_nonce") and key in earlier:
            return earlier[key]
        response = await real(route, **kwargs)
        if nonce is not None:
            earlier[key] = response
        return response

    http.request = request
    return sent


class Owner(discobase.Table):
    name: str
    age: int = 0

    class Settings:
        primary_key = "name"


class Pet(discobase.Table):
    name: str
    legs: int = 4

    class Settings:
        primary_key = "name"


class PetWithOwner(discobase.Table):
    name: str
    legs: int = 4
    owner: str | None = None

    class Settings:
        name = "pet"
        primary_key = "name"


async def test_every_catalog_event_lands_under_enforce_nonce(simcord_env, new_db):
    nonces = enforce_nonce(simcord_env)
    db = new_db()
    db.table(Owner)
    db.table(Pet)
    await db.open()  # two class tables: two catalog events in one channel
    assert set(db.tables) == {"owner", "pet"}
    await Owner(name="ann", age=3).save()
    await db.create_table("tags", {"label": str})
    await db.create_table("notes", {"text": str})
    await db.drop_table("tags")
    assert set(db.tables) == {"owner", "pet", "notes"}
    await db.close()

    await simcord_env.restart_bot(make_bot())
    nonces += enforce_nonce(simcord_env)
    db2 = new_db()
    db2.table(Owner)
    db2.table(PetWithOwner)  # an alter
    await db2.open()
    await PetWithOwner(name="rex", owner="ann").save()
    await db2.close()

    await simcord_env.restart_bot(make_bot())
    enforce_nonce(simcord_env)
    db3 = new_db()
    db3.table(Owner)
    db3.table(PetWithOwner)
    await db3.open()
    assert set(db3.tables) == {"owner", "pet", "notes"}
    assert db3.schema("pet").field_names == ["name", "legs", "owner"]
    assert [(o.name, o.age) for o in await Owner.find()] == [("ann", 3)]
    assert [(p.name, p.owner) for p in await PetWithOwner.find()] == [("rex", "ann")]
    assert (await db3.check()).ok
    await db3.close()
    assert len(nonces) == len(set(nonces))  # one nonce per logical message
    assert "..." not in nonces
