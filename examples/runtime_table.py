"""A table made at run time, without a Python class (as the bot's ``/table create`` does).

Its schema lives in the server, so any process can use it later by name: ``db.tables[name]``
is its class once the database is open.

    python examples/runtime_table.py            # offline, on SimCord
    DISCORD_TOKEN=... DISCOBASE_GUILD=... python examples/runtime_table.py
"""

from __future__ import annotations

import asyncio

from connect import connected, guild

import discobase

db = discobase.Database(guild("discobase runtime table"))


async def use_a_runtime_table() -> None:
    if "scores" in db.tables:  # left over from an earlier run on Discord
        await db.drop_table("scores")
    Score = await db.create_table(
        "scores",
        {"player": "str", "points": ("int", 0), "level": "int?", "seen": "datetime?"},
        primary_key="player",
        indexes=["points"],
    )
    await Score(player="ada", points=120, level=3).save()
    await Score.insert_many([Score(player="bob", points=80), {"player": "cy", "points": 95}])
    try:
        await Score(player="dee", points="lots").save()
    except discobase.ValidationError as error:
        print("refused:", error.errors[0]["loc"], error.errors[0]["msg"])

    same_class = db.tables["scores"]  # how another part of a program finds the table
    top = await same_class.find(same_class.points >= 90, order_by="-points")
    print("top players:", [(score.player, score.points) for score in top])
    schema = db.schema("scores")
    print("fields:", [(field.name, field.type, field.optional) for field in schema.fields])
    print("records:", schema.record_count)

    await db.drop_table("scores")  # deletes its channels too
    print("tables left:", sorted(db.tables))


async def main() -> None:
    async with connected(db):
        await use_a_runtime_table()


if __name__ == "__main__":
    asyncio.run(main())
