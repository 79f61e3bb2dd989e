"""Storage channels whose permission overwrites someone changed after discobase made them:
opening warns about channels others may read or change and refuses channels the bot cannot
use; ``check()`` reports both as ``channel-access``; neither changes an overwrite."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import simcord

import discobase
from tests.conftest import make_bot, rest_calls


class Note(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"


async def stored_guild(simcord_env: Any, new_db: Any, **options: Any) -> discobase.Database:
    db = new_db(**options)
    db.table(Note)
    await db.open()
    await Note(key="a", n=1).save()
    await db.close()
    return db


def channel(simcord_env: Any, guild: Any, name: str) -> Any:
    found = [c for c in simcord_env.bot.get_guild(guild.id).text_channels if c.name == name]
    assert len(found) == 1
    return found[0]


def overwrites(simcord_env: Any, guild: Any) -> dict[str, Any]:
    return {
        c.name: {t.id: o.pair() for t, o in c.overwrites.items()}
        for c in simcord_env.bot.get_guild(guild.id).text_channels
    }


async def test_channels_others_may_read_or_write_open_with_a_warning_and_are_reported(
    simcord_env, new_db, guild, caplog
):
    admin_role = guild.create_role("db-admin")
    await stored_guild(simcord_env, new_db, admin_role=admin_role.id)
    helpers = guild.create_role("helpers")
    readers = guild.create_role("readers")
    bot_guild = simcord_env.bot.get_guild(guild.id)
    # A server admin edits the overwrites by hand (the bot's client stands in for them).
    note = channel(simcord_env, guild, "note")
    await note.set_permissions(bot_guild.get_role(helpers.id), send_messages=True)
    await note.set_permissions(bot_guild.get_role(readers.id), view_channel=True)
    await channel(simcord_env, guild, "catalog").set_permissions(
        bot_guild.default_role, view_channel=None
    )
    await simcord_env.settle()
    before = overwrites(simcord_env, guild)
    calls = len(simcord_env.http_requests)
    with caplog.at_level(logging.WARNING, logger="discobase.database"):
        db = new_db(admin_role=admin_role.id)
        db.table(Note)
        await db.open()
    assert {r.n for r in await Note.find()} == {1}  # storage still works
    warned = [r.getMessage() for r in caplog.records if r.name == "discobase.database"]
    assert len(warned) == 3 and all("storage channel #" in w for w in warned)
    report = await db.check()
    access = sorted(
        ((p.table, p.channel_id, p.detail)
         for p in report.problems if p.kind is discobase.ProblemKind.CHANNEL_ACCESS),
        key=str,
    )  # fmt: skip
    assert access == sorted(
        [
            (None, channel(simcord_env, guild, "catalog").id,
             "#catalog: @everyone is not denied view_channel: every member can read it"),
            ("note", note.id, f"#note: role {helpers.id} is allowed send_messages"),
            ("note", note.id,
             f"#note: role {readers.id} may view it: it can read every record"),
        ],
        key=str,
    )  # fmt: skip
    assert not report.ok and "channel-access" in str(report)
    # The admin role discobase made (read only) is no problem; nothing was changed.
    assert overwrites(simcord_env, guild) == before
    assert not [c for c in rest_calls(simcord_env, calls) if "permissions" in c]
    await db.close()


async def test_a_role_other_than_the_admin_role_that_may_only_read_is_reported(
    simcord_env, new_db, guild, caplog
):
    admin_role = guild.create_role("db-admin")
    await stored_guild(simcord_env, new_db, admin_role=admin_role.id)
    snoops = guild.create_role("snoops")
    bot_guild = simcord_env.bot.get_guild(guild.id)
    note = channel(simcord_env, guild, "note")
    # Read only, as discobase makes the admin role: it still reads every record.
    await note.set_permissions(
        bot_guild.get_role(snoops.id),
        view_channel=True,
        read_message_history=True,
        send_messages=False,
    )
    await simcord_env.settle()
    with caplog.at_level(logging.WARNING, logger="discobase.database"):
        db = new_db(admin_role=admin_role.id)
        db.table(Note)
        await db.open()
    warned = [r.getMessage() for r in caplog.records if r.name == "discobase.database"]
    assert len(warned) == 1 and f"role {snoops.id} may view it" in warned[0]
    report = await db.check()
    access = [
        (p.table, p.channel_id, p.detail)
        for p in report.problems
        if p.kind is discobase.ProblemKind.CHANNEL_ACCESS
    ]
    assert access == [
        ("note", note.id, f"#note: role {snoops.id} may view it: it can read every record")
    ]
    await db.close()


async def test_a_fresh_database_reports_no_channel_access_problem(simcord_env, new_db, guild):
    db = await stored_guild(simcord_env, new_db, admin_role=guild.create_role("db-admin").id)
    await db.open()  # its class is still registered
    report = await db.check()
    assert report.ok, report
    await db.close()


@pytest.mark.parametrize("name", ["catalog", "note"])
async def test_a_storage_channel_hidden_from_the_bot_is_refused_before_it_is_read(
    simcord_env, new_db, guild, name
):
    await stored_guild(simcord_env, new_db)
    bot_guild = simcord_env.bot.get_guild(guild.id)
    hidden = channel(simcord_env, guild, name)
    await hidden.set_permissions(bot_guild.me, view_channel=False)
    await simcord_env.settle()
    await simcord_env.restart_bot(make_bot())  # a new process
    calls = len(simcord_env.http_requests)
    db = new_db()
    db.table(Note)
    with pytest.raises(discobase.MissingPermissionsError) as raised:
        await db.open()
    assert raised.value.guild == guild.id
    assert raised.value.missing == [
        f"{permission} in #{name}"
        # A channel one cannot view grants nothing else (Discord's permission algorithm).
        for permission in (
            "view_channel", "send_messages", "read_message_history", "attach_files",
            "manage_messages",
            # #note holds the table's thread shards.
            *(("create_private_threads", "send_messages_in_threads", "manage_threads")
              if name == "note" else ()),
        )
    ]  # fmt: skip
    assert f"/channels/{hidden.id}/messages" not in {
        r.path for r in simcord_env.http_requests[calls:]
    }
    assert not db.is_open


async def test_reset_permissions_hides_the_reported_channels_again(simcord_env, new_db, guild):
    admin_role = guild.create_role("db-admin")
    db = await stored_guild(simcord_env, new_db, admin_role=admin_role.id)
    helpers = guild.create_role("helpers")
    member = guild.add_member(simcord_env.create_user("helper"), roles=[helpers])
    bot_guild = simcord_env.bot.get_guild(guild.id)
    note = channel(simcord_env, guild, "note")
    await note.set_permissions(bot_guild.get_role(helpers.id), view_channel=True)
    await simcord_env.settle()
    await member.send(guild.channels["note"], "I can write here")  # the hole
    await db.open()
    assert [p.kind for p in (await db.check()).problems] == ["channel-access", "foreign-author"]
    assert await db.reset_permissions() == [note.id]
    await simcord_env.settle()
    assert [p.kind for p in (await db.check()).problems] == ["foreign-author"]
    with pytest.raises(simcord.BackendError, match="Missing Access"):
        await member.send(guild.channels["note"], "and now?")
    assert bot_guild.get_role(helpers.id) not in note.overwrites
    admins = note.overwrites_for(bot_guild.get_role(admin_role.id))
    assert admins.view_channel is True and admins.send_messages is False
    assert await db.reset_permissions() == []  # nothing left to reset
    assert {r.n for r in await Note.find()} == {1}
    await db.close()


async def test_the_channel_of_a_table_with_thread_shards_needs_the_thread_permissions(
    simcord_env, new_db, guild
):
    await stored_guild(simcord_env, new_db)  # Note has the default shards: threads of #note
    bot_guild = simcord_env.bot.get_guild(guild.id)
    for name, denied in [
        # The catalog holds no threads: denying them there is no problem.
        ("catalog", {"manage_threads": False}),
        ("note", {"send_messages_in_threads": False, "manage_threads": False}),
    ]:
        found = channel(simcord_env, guild, name)
        own = found.overwrites_for(bot_guild.me)  # the bot's overwrite, with the denials added
        own.update(**denied)
        await found.set_permissions(bot_guild.me, overwrite=own)
    await simcord_env.settle()
    db = new_db()
    db.table(Note)
    with pytest.raises(discobase.MissingPermissionsError) as raised:
        await db.open()
    assert raised.value.missing == [
        "send_messages_in_threads in #note",
        "manage_threads in #note",
    ]
    assert not db.is_open
