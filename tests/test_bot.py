"""The bot (``python bot.py``, the discobot package): settings, the bot factory, startup checks,
exit codes and the offline mode."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import simcord

import discobase
import discobot.offline
from discobot import CommandSync, DiscobaseBot, ExitCode, Settings, SettingsError, create_bot
from discobot.offline import offline_session, run_offline
from discobot.startup import main, run_online

COGS = Path(__file__).resolve().parents[1] / "cogs"


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": " abc.def ",
            "DISCOBASE_GUILD": "123",
            "DISCOBASE_ADMIN_ROLE": "db-admin",
            "DISCOBASE_READER_ROLE": "456",
            "DISCOBASE_LOG_LEVEL": "debug",
            "DISCOBASE_CATEGORY": "data",
            "DISCOBASE_SYNC": "Never",
        }
    )
    assert settings == Settings(
        token="abc.def",
        guild_id=123,
        admin_role="db-admin",
        reader_role="456",
        log_level="DEBUG",
        category="data",
        command_sync=CommandSync.NEVER,
    )
    assert "abc.def" not in repr(settings)
    assert Settings.from_env({}) == Settings()


def test_settings_read_dotenv_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DISCOBASE_GUILD=42\nDISCOBASE_CATEGORY=from-file\n")
    monkeypatch.setenv("DISCOBASE_CATEGORY", "from-env")
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)

    settings = Settings.from_env(dotenv_path=dotenv)

    assert settings.guild_id == 42
    assert settings.category == "from-env"


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"DISCOBASE_GUILD": "my server"}, "DISCOBASE_GUILD must be a server id"),
        ({"DISCOBASE_LOG_LEVEL": "loud"}, "DISCOBASE_LOG_LEVEL must be"),
        ({"DISCORD_TOKEN": "abc def"}, "DISCORD_TOKEN contains whitespace"),
        ({"DISCOBASE_SYNC": "sometimes"}, "DISCOBASE_SYNC must be auto, always or never"),
    ],
)
def test_malformed_settings_are_refused(variables: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env(variables)


def test_the_bot_asks_for_no_privileged_intent() -> None:
    intents = create_bot(Settings()).intents
    assert intents.guilds
    assert intents.guild_messages
    assert not (intents.members or intents.presences or intents.message_content)


async def test_every_command_option_is_described() -> None:
    the_bot = create_bot(Settings())
    async with simcord.run(the_bot):
        commands = [
            command
            for top in the_bot.tree.get_commands()
            for command in (top.walk_commands() if hasattr(top, "walk_commands") else [top])
        ]
        assert {command.qualified_name for command in commands} == {
            "table create",
            "table list",
            "table reshard",
            "schema",
            "drop",
            "check",
            "compact",
            "insert",
            "find",
            "count",
            "update",
            "delete",
            "export",
            "import",
        }
        for command in commands:
            for parameter in command.parameters:
                assert parameter.description != "…", f"{command.qualified_name} {parameter.name}"


async def test_the_bot_loads_every_module_in_cogs_as_an_extension() -> None:
    the_bot = create_bot(Settings())
    async with simcord.run(the_bot):
        assert set(the_bot.extensions) == {
            f"cogs.{path.stem}" for path in COGS.glob("*.py") if path.stem != "__init__"
        }


class TestConfiguredGuild:
    """With DISCOBASE_GUILD set, the bot opens that guild's database when it is ready, or stops."""

    @staticmethod
    async def started(with_guild: bool) -> tuple[simcord.Env, DiscobaseBot]:
        the_bot = create_bot(Settings(guild_id=1234))
        env = simcord.Env(the_bot)
        if with_guild:
            env.create_guild("configured", id=1234)
        await env.start()
        return env, the_bot

    async def test_the_configured_guild_opens_at_startup(self) -> None:
        env, the_bot = await self.started(with_guild=True)
        try:
            assert the_bot.exit_code is ExitCode.OK
            assert not the_bot.is_closed()
            assert (await the_bot.database(1234)).is_open
        finally:
            await env.shutdown()

    async def test_a_guild_the_bot_is_not_in_stops_it(self) -> None:
        env, the_bot = await self.started(with_guild=False)
        try:
            assert the_bot.exit_code is ExitCode.GUILD_NOT_FOUND
            assert the_bot.exit_message is not None
            assert "the bot is not in server 1234 (DISCOBASE_GUILD)" in the_bot.exit_message
            assert the_bot.is_closed()
        finally:
            await env.shutdown()

    async def test_missing_bot_permissions_stop_it_and_are_named(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def refuse(self: discobase.Database) -> None:
            raise discobase.MissingPermissionsError(1234, ["manage_channels", "attach_files"])

        monkeypatch.setattr(discobase.Database, "open", refuse)
        env, the_bot = await self.started(with_guild=True)
        try:
            assert the_bot.exit_code is ExitCode.MISSING_PERMISSIONS
            assert the_bot.exit_message is not None
            assert "server 1234: manage_channels, attach_files" in the_bot.exit_message
            assert the_bot.is_closed()
        finally:
            await env.shutdown()


async def test_a_rejected_token_is_one_line_and_exit_code_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(self: Any, token: str, *, reconnect: bool = True) -> None:
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(DiscobaseBot, "start", refuse)

    code, message = await run_online(Settings(token="not-a-token"))

    assert code is ExitCode.LOGIN_FAILED
    assert message is not None
    assert "\n" not in message
    assert "not-a-token" not in message


def test_online_without_a_token_exits_with_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)

    assert main(["--online"]) == ExitCode.BAD_SETTINGS
    assert capsys.readouterr().err == "discobase: DISCORD_TOKEN is not set (put it in .env)\n"


async def test_offline_mode_serves_its_page_on_loopback_and_answers_commands() -> None:
    async with offline_session(Settings()) as session:
        base, capability = session.url.split("/#")
        assert base.startswith("http://127.0.0.1:")
        headers = {"X-Simcord-Capability": capability}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/") as page:
                assert page.status == 200
                assert page.content_type == "text/html"
            async with http.post(
                f"{base}/api/pages", json={"viewer_id": str(session.admin.id)}, headers=headers
            ) as opened:
                state = await opened.json()
            headers["X-Simcord-Context"] = state["context"]["id"]
            async with http.get(f"{base}/api/commands", headers=headers) as listed:
                catalog = await listed.json()
            entry = next(e for e in catalog["entries"] if e["invocation"] == "table create")
            action = {
                "protocol_version": 3,
                "sequence": 1,
                "request_id": "create-pets",
                "generation": state["context"]["generation"],
                "bot_generation": state["botGeneration"],
                "published_revision": state["publishedRevision"],
                "kind": "run_command",
                "command_id": entry["commandId"],
                "path": entry["path"],
                "schema_fingerprint": entry["schemaFingerprint"],
                "options": {"name": "pets", "fields": "name:str, legs:int=4"},
            }
            async with http.post(f"{base}/api/action", json=action, headers=headers) as ran:
                outcome = await ran.json()

        assert outcome["settlement"] == "settled"
        assert not outcome["rejected"]
        database = await session.bot.database(session.guild.id)
        assert "pets" in database.tables
        listed_by_member = await session.member.slash(session.channel, "table list")
        assert listed_by_member.response.content.startswith("Reading the database needs")
        listed_by_reader = await session.reader.slash(session.channel, "table list")
        assert listed_by_reader.response.embeds[0].description == "`pets`: 0 records"


async def test_run_offline_announces_that_data_lives_in_memory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stop_at_once = discobot.offline.install_stop_signals

    def stop_immediately(stop: Any) -> None:
        stop_at_once(stop)
        stop.set()

    monkeypatch.setattr(discobot.offline, "install_stop_signals", stop_immediately)

    assert await run_offline(Settings()) == (ExitCode.OK, None)

    printed = capsys.readouterr().out
    assert "Data lives in memory and is gone when you stop the bot" in printed
    assert "http://127.0.0.1:" in printed


class TestCommandSync:
    """The bot sends its commands to Discord when they changed, not on every start."""

    @staticmethod
    def syncs(env: simcord.Env) -> int:
        return sum(
            1
            for request in env.http_requests
            if request.method == "PUT" and request.path.endswith("/commands")
        )

    async def test_unchanged_commands_are_not_synced_again(self, tmp_path: Path) -> None:
        record = tmp_path / "commands.json"
        settings = Settings(admin_role="db-admin")
        async with simcord.run(create_bot(settings, command_record=record)) as env:
            assert self.syncs(env) == 1
            assert record.is_file()

            await env.restart_bot(create_bot(settings, command_record=record))

            assert self.syncs(env) == 1
            guild = env.create_guild("served")
            channel = guild.create_text_channel("general")
            owner = simcord.MemberActor(env, guild, guild.owner)
            listed = await owner.slash(channel, "table list")
            assert listed.response is not None
            assert listed.response.content.startswith("There are no tables yet")

    async def test_changed_commands_are_synced(self, tmp_path: Path) -> None:
        record = tmp_path / "commands.json"
        async with simcord.run(
            create_bot(Settings(admin_role="db-admin"), command_record=record)
        ) as env:
            await env.restart_bot(create_bot(Settings(), command_record=record))

            assert self.syncs(env) == 2

    @pytest.mark.parametrize(
        ("sync", "expected"), [(CommandSync.ALWAYS, 2), (CommandSync.NEVER, 1)]
    )
    async def test_the_sync_setting_overrides_the_record(
        self, tmp_path: Path, sync: CommandSync, expected: int
    ) -> None:
        record = tmp_path / "commands.json"
        async with simcord.run(create_bot(Settings(), command_record=record)) as env:
            await env.restart_bot(create_bot(Settings(command_sync=sync), command_record=record))

            assert self.syncs(env) == expected

    async def test_without_a_record_every_start_syncs(self) -> None:
        async with simcord.run(create_bot(Settings())) as env:
            await env.restart_bot(create_bot(Settings()))

            assert self.syncs(env) == 2


class TestOfflineProcess:
    """``python bot.py`` offline, as a newcomer runs it: what it prints and how it exits."""

    BOT = str(Path(__file__).resolve().parents[1] / "bot.py")
    MISLEADING = (
        "Guilds intent seems to be disabled",
        "voice will NOT be supported",
        "logging in using static token",
        "TestBot",
        "global commands",
        "in 0 guild(s)",
    )

    @staticmethod
    def environment() -> dict[str, str]:
        return {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DISCORD_", "DISCOBASE_"))
        }

    async def test_the_offline_start_prints_nothing_misleading(self, tmp_path: Path) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            self.BOT,
            "--offline",
            cwd=tmp_path,
            env=self.environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        printed = []
        while not any("http://127.0.0.1:" in line for line in printed):
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, "the bot exited before printing its address"
            printed.append(line.decode())
        process.send_signal(signal.SIGINT)
        _, logged = await asyncio.wait_for(process.communicate(), timeout=60)

        assert process.returncode == ExitCode.OK
        log = logged.decode()
        assert "logged in as discobase, in 1 guild(s)" in log
        for misleading in self.MISLEADING:
            assert misleading not in log

    def run(self, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, self.BOT, *arguments],
            cwd=tmp_path,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_a_port_out_of_range_is_one_line_and_exit_code_2(self, tmp_path: Path) -> None:
        finished = self.run(tmp_path, "--offline", "--port", "99999")

        assert finished.returncode == ExitCode.BAD_SETTINGS
        assert finished.stderr == "discobase: --port must be 0 to 65535, not 99999\n"
        assert finished.stdout == ""

    def test_a_port_in_use_is_one_line_and_exit_code_2(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            finished = self.run(tmp_path, "--offline", "--port", str(port))

        assert finished.returncode == ExitCode.BAD_SETTINGS
        assert finished.stderr.startswith(f"discobase: port {port} on 127.0.0.1 is in use")
        assert finished.stderr.count("\n") == 1
        assert finished.stdout == ""
