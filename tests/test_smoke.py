"""``python -m discobase.smoke``: its settings, its refusal to run without a token, and its
script run against SimCord in strict mode (the real run needs a token and never runs here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import simcord

import discobase
from discobase import smoke
from tests.strict import Strict


def settings(tmp_path: Path, argv: list[str], environ: dict[str, str], env_file: str = "") -> tuple:
    path = tmp_path / ".env"
    path.write_text(env_file, encoding="utf-8")
    return smoke.read_settings([*argv, "--env-file", str(path)], environ)


def test_the_token_and_guild_come_from_the_environment(tmp_path):
    assert settings(tmp_path, [], {"DISCORD_TOKEN": "t0k", "DISCOBASE_SMOKE_GUILD": "42"}) == (
        "t0k",
        42,
    )


def test_the_env_file_is_read_and_the_environment_and_arguments_win(tmp_path):
    env_file = "# a comment\nDISCORD_TOKEN='from-file'\nDISCOBASE_SMOKE_GUILD=1\n"
    assert settings(tmp_path, [], {}, env_file) == ("from-file", 1)
    assert settings(tmp_path, [], {"DISCORD_TOKEN": "from-env"}, env_file) == ("from-env", 1)
    assert settings(tmp_path, ["--guild", "7"], {}, env_file) == ("from-file", 7)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--guild", "1"], {}, "DISCORD_TOKEN is not set"),
        (["--guild", "1"], {"DISCORD_TOKEN": "  "}, "DISCORD_TOKEN is not set"),
        ([], {"DISCORD_TOKEN": "t"}, "give the id of a throwaway guild"),
        (["--guild", "my server"], {"DISCORD_TOKEN": "t"}, "give the id of a throwaway guild"),
    ],
)
def test_missing_or_bad_settings_exit_with_status_2_and_say_why(
    tmp_path, capsys, argv, environ, message
):
    with pytest.raises(SystemExit) as exited:
        settings(tmp_path, argv, environ)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_main_refuses_to_run_without_a_token_before_making_a_client(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here

    def no_database(*args: object, **kwargs: object) -> None:
        raise AssertionError("a client was made")

    monkeypatch.setattr(smoke, "Database", no_database)
    with pytest.raises(SystemExit) as exited:
        smoke.main(["--guild", "1"])
    assert exited.value.code == 2
    assert "nothing was run" in capsys.readouterr().err


def test_the_module_runs_and_refuses_without_a_token(tmp_path):
    environ = {"PATH": "", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "discobase.smoke", "--guild", "1"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "DISCORD_TOKEN is not set" in done.stderr


async def test_the_script_passes_against_simcord_and_cleans_up(
    simcord_env, strict: Strict, guild, fast_retry
):
    other = await strict.second_process()
    bots = iter([simcord_env.bot, other.bot, simcord_env.bot])
    strict.rate_limit("message_create", retry_after=2.5)

    async def connect() -> discobase.Database:
        db = discobase.Database(guild.id, bot=next(bots), category="smoke-test", retry=fast_retry)
        await db.open()
        return db

    lines: list[str] = []
    report = await smoke.run_smoke(connect, pause=simcord_env.advance_time, out=lines.append)
    assert report.ok, report
    assert [s.name for s in report.steps] == [
        "open",
        "create",
        "writes",
        "2nd client",
        "catch-up",
        "compact",
        "reopen",
        "check",
        "drop",
        "clean up",
    ]
    assert all(step.calls > 0 for step in report.steps if step.name != "check")
    assert report.rate_limits == [2.5]  # discord.py's log of the one 429, as on real Discord
    assert sum(step.rate_limit_wait for step in report.steps) == 2.5
    assert sum(report.calls.values()) == sum(s.calls for s in report.steps)
    assert "smoke test passed" in str(report)
    assert len(lines) == len(report.steps)
    assert [c.name for c in simcord_env.backend.channels.values()] == []  # nothing left behind


async def test_a_foreign_message_in_storage_fails_the_check_and_all_is_still_cleaned_up(
    simcord_env, strict: Strict, guild, fast_retry
):
    opened: list[discobase.Database] = []

    async def connect() -> discobase.Database:
        if len(opened) == 2:  # before the reopen, the owner types into the catalog channel
            catalog = next(c for c in simcord_env.backend.channels.values() if c.name == "catalog")
            owner = simcord.MemberActor(simcord_env, guild, guild.owner)
            await strict.post_as(owner, catalog.id, "dbs1 cat hand-typed")
        db = discobase.Database(
            guild.id, bot=simcord_env.bot, category="smoke-test", retry=fast_retry
        )
        await db.open()
        opened.append(db)
        return db

    report = await smoke.run_smoke(connect, pause=simcord_env.advance_time, out=lambda _: None)
    assert not report.ok
    assert any(f.startswith("check() reported problems") for f in report.failures)
    assert "smoke test FAILED" in str(report)
    assert [c.name for c in simcord_env.backend.channels.values()] == []
