"""The ``discobase`` command line, run in-process against SimCord guilds (and once as a
subprocess with ``--offline``)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import simcord

import discobase
from discobase.cli import run
from discobase.progress import Progress


async def make_pets(env: simcord.Env, guild: simcord.GuildHandle) -> None:
    """Two tables in ``guild``: keyed pets (unique email, a json field) and keyless notes."""
    db = discobase.Database(guild.id, bot=env.bot)
    await db.open()
    pets = await db.create_table(
        "pets",
        {"name": "str", "legs": ("int", 4), "email": "str?", "born": "date?", "tags": "json"},
        primary_key="name",
        unique=["email"],
    )
    await pets.insert_many(
        [
            {"name": "rex", "legs": 4, "email": "rex@x", "born": "2020-01-02", "tags": ["a"]},
            {"name": "kaa", "legs": 0, "tags": {"venom": False}},
            {"name": 'tweety, "the" bird', "legs": 2, "tags": None},
        ]
    )
    notes = await db.create_table("notes", {"text": "str", "at": "datetime?"}, shards=2)
    await notes.insert_many([{"text": f"note {i}"} for i in range(7)])
    await db.close()


async def contents(env: simcord.Env, guild: simcord.GuildHandle, **options: Any) -> dict[str, Any]:
    """Every table's schema (channels aside) and records, read by a fresh database."""
    db = discobase.Database(guild.id, bot=env.bot, **options)
    await db.open()
    found: dict[str, Any] = {}
    for name in sorted(db.tables):
        schema = db.schema(name).to_dict()
        del schema["channels"]
        records = sorted(
            [
                json.dumps(r.model_dump(mode="json"), sort_keys=True)
                async for r in db.tables[name].all()
            ]
        )
        found[name] = (schema, records)
    await db.close()
    return found


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
async def home(simcord_env: simcord.Env) -> simcord.GuildHandle:
    guild = simcord_env.create_guild("home")
    await make_pets(simcord_env, guild)
    return guild


async def test_backup_and_restore_into_another_guild_keep_every_schema_and_record(
    simcord_env, home, tmp_path, capsys
):
    other = simcord_env.create_guild("other")
    backup = tmp_path / "home.discobase"
    assert await run(["backup", "--guild", "home", str(backup)], simcord_env.bot) == 0
    assert leftovers(tmp_path) == ["home.discobase"]
    assert await run(["restore", "--guild", str(other.id), str(backup)], simcord_env.bot) == 0
    out = capsys.readouterr().out
    assert "restored 2 tables, 10 records from 'home'" in out
    original = await contents(simcord_env, home)
    assert await contents(simcord_env, other) == original
    assert len(original["notes"][1]) == 7 and original["notes"][0]["shards"] == 2

    # Restoring again over the same tables is refused before anything is written.
    assert await run(["restore", "--guild", "other", str(backup)], simcord_env.bot) == 1
    assert "pets" in capsys.readouterr().err
    assert await contents(simcord_env, other) == original


async def test_restore_keeps_the_ttl_and_claim_unique_a_table_stored(simcord_env, tmp_path):
    home = simcord_env.create_guild("home")
    other = simcord_env.create_guild("other")
    db = discobase.Database(home.id, bot=simcord_env.bot)
    await db.open()
    await db.create_table(
        "members", {"key": "str", "email": "str"}, primary_key="key", unique=["email"],
        claim_unique=True, ttl=datetime.timedelta(days=2),
    )  # fmt: skip
    await db.close()
    backup = tmp_path / "home.discobase"
    assert await run(["backup", "--guild", "home", str(backup)], simcord_env.bot) == 0
    assert await run(["restore", "--guild", str(other.id), str(backup)], simcord_env.bot) == 0
    db = discobase.Database(other.id, bot=simcord_env.bot)
    await db.open()
    restored = db.schema("members")
    assert (restored.claim_unique, restored.ttl) == (True, 2 * 86400)
    await db.close()


async def test_a_damaged_backup_restores_nothing(simcord_env, home, tmp_path, capsys):
    other = simcord_env.create_guild("other")
    backup = tmp_path / "home.discobase"
    assert await run(["backup", "--guild", "home", str(backup)], simcord_env.bot) == 0
    lines = backup.read_text().splitlines()
    cut = tmp_path / "cut.discobase"
    cut.write_text("\n".join(lines[:-1]) + "\n")  # the last record is missing
    bad = tmp_path / "bad.discobase"
    bad.write_text("\n".join(lines).replace('"legs": 2', '"legs": "two"') + "\n")
    for damaged, why in ((cut, "cut short"), (bad, "legs")):
        capsys.readouterr()
        assert await run(["restore", "--guild", "other", str(damaged)], simcord_env.bot) == 3
        err = capsys.readouterr().err
        assert why in err and "nothing was restored" in err
    assert await contents(simcord_env, other) == {}


async def test_export_writes_jsonl_and_csv_that_import_reads_back(
    simcord_env, home, tmp_path, capsys
):
    jsonl, table_csv = tmp_path / "pets.jsonl", tmp_path / "pets.csv"
    assert await run(["export", "--guild", "home", "pets", "-o", str(jsonl)], simcord_env.bot) == 0
    assert (
        await run(["export", "--guild", "home", "pets", "-o", str(table_csv)], simcord_env.bot) == 0
    )
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert {r["name"]: r["legs"] for r in records} == {"rex": 4, "kaa": 0, 'tweety, "the" bird': 2}
    rows = list(csv.DictReader(io.StringIO(table_csv.read_text())))
    assert [row["name"] for row in rows] == [r["name"] for r in records]
    kaa = next(row for row in rows if row["name"] == "kaa")
    assert kaa == {"name": "kaa", "legs": "0", "email": "", "born": "", "tags": '{"venom": false}'}

    other = simcord_env.create_guild("other")
    for path, table in ((jsonl, "from_jsonl"), (table_csv, "from_csv")):
        args = ["import", "--guild", "other", table, str(path), "--create", "--key", "name"]
        assert await run(args, simcord_env.bot) == 0
    found = await contents(simcord_env, other)
    assert found["from_jsonl"][1] == found["from_csv"][1]  # the json field is JSON in CSV
    assert sorted(json.dumps(r, sort_keys=True) for r in records) == found["from_jsonl"][1]

    # Into an existing table the CSV's cells take the table's types (tags is json there).
    db = discobase.Database(other.id, bot=simcord_env.bot)
    await db.open()
    await db.create_table(
        "pets", {"name": "str", "legs": "int", "email": "str?", "born": "date?", "tags": "json"}
    )
    await db.close()
    assert await run(["import", "--guild", "other", "pets", str(table_csv)], simcord_env.bot) == 0
    assert (await contents(simcord_env, other))["pets"][1] == found["from_jsonl"][1]

    database = tmp_path / "all"
    assert (
        await run(["export", "--guild", "home", "--all", "-o", str(database)], simcord_env.bot) == 0
    )
    assert sorted(p.name for p in database.iterdir()) == ["notes.jsonl", "pets.jsonl"]
    assert len((database / "notes.jsonl").read_text().splitlines()) == 7


async def test_an_import_with_bad_rows_changes_nothing_and_lists_them(
    simcord_env, home, tmp_path, capsys
):
    before = await contents(simcord_env, home)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"name": "new", "legs": 3, "tags": 1}\n'
        '{"name": "rex", "legs": 1, "tags": 1}\n'  # the key exists
        "not json\n"
        '{"name": "x", "legs": "many", "tags": 1}\n'
        '{"name": "y", "tags": 1, "email": "rex@x"}\n'  # a unique value that exists
        '{"name": "z", "tags": 1, "colour": "red"}\n'  # no such field
        '{"name": "new", "tags": 2}\n'  # repeats a key of the file
    )
    assert await run(["import", "--guild", "home", "pets", str(bad)], simcord_env.bot) == 3
    err = capsys.readouterr().err
    assert "6 of 7 rows are invalid" in err and "nothing was imported" in err
    for line, why in ((2, "key name='rex'"), (3, "not JSON"), (4, "legs"), (5, "email='rex@x'"),
                      (6, "colour"), (7, "key name='new'")):  # fmt: skip
        assert f"line {line}: " in err and why in err
    assert await contents(simcord_env, home) == before

    assert await run(["import", "--guild", "home", "missing", str(bad)], simcord_env.bot) == 2
    assert "--create" in capsys.readouterr().err
    assert (
        await run(["import", "--guild", "home", "pets", str(tmp_path / "no")], simcord_env.bot) == 2
    )
    assert await contents(simcord_env, home) == before

    args = ["import", "--guild", "home", "pets", str(bad), "--skip-invalid"]
    assert await run(args, simcord_env.bot) == 0
    assert "imported 1 records into pets, skipped 6 invalid rows" in capsys.readouterr().out
    after = await contents(simcord_env, home)
    assert len(after["pets"][1]) == len(before["pets"][1]) + 1


async def test_tables_schema_check_compact_stats_and_usage_errors(
    simcord_env, home, capsys, monkeypatch
):
    bot = simcord_env.bot
    assert await run(["tables", "--guild", "home"], bot) == 0
    out = capsys.readouterr().out
    assert "notes\t7 records\t2 fields\tkey (generated)\t2 shards" in out
    assert "pets\t3 records\t5 fields\tkey name\t6 shards" in out
    assert await run(["schema", "--guild", "home", "pets"], bot) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["primary_key"] == "name" and schema["unique"] == ["email"]
    assert await run(["schema", "--guild", "home", "nope"], bot) == 1
    assert "nope" in capsys.readouterr().err
    assert await run(["check", "--guild", "home"], bot) == 0
    assert "2 tables, 10 records" in capsys.readouterr().out
    assert await run(["stats", "--guild", "home"], bot) == 0
    assert "total\t10 records" in capsys.readouterr().out
    assert await run(["compact", "--guild", "home", "pets"], bot) == 0
    assert "compacted pets" in capsys.readouterr().out

    # A storage channel no table uses: check reports it and exits 4.
    home.create_text_channel("stray", category=home.channels["discobase"])
    assert await run(["check", "--guild", "home"], bot) == 4
    assert "orphan-channel" in capsys.readouterr().out

    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("DISCOBASE_GUILD", raising=False)
    monkeypatch.chdir(os.path.dirname(__file__))  # no .env here
    assert await run(["tables", "--guild", "1"]) == 2
    assert "DISCORD_TOKEN" in capsys.readouterr().err
    assert await run(["tables"], bot) == 2
    assert "DISCOBASE_GUILD" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        await run(["export", "--format", "xml"], bot)
    assert usage.value.code == 2


async def test_check_reports_a_storage_channel_others_may_read_and_reset_permissions_hides_it(
    simcord_env, home, capsys
):
    bot = simcord_env.bot
    pets = next(c for c in bot.get_guild(home.id).text_channels if c.name == "pets")
    await pets.set_permissions(pets.guild.default_role, view_channel=True)  # by hand
    await simcord_env.settle()
    assert await run(["check", "--guild", "home"], bot) == 4
    assert "channel-access" in capsys.readouterr().out
    assert await run(["reset-permissions", "--guild", "home"], bot) == 0
    assert "of 1 storage channels" in capsys.readouterr().out
    await simcord_env.settle()
    assert pets.overwrites_for(pets.guild.default_role).view_channel is False
    assert await run(["check", "--guild", "home"], bot) == 0
    assert "2 tables, 10 records" in capsys.readouterr().out


def test_progress_on_a_non_terminal_is_a_few_plain_lines() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress("import t", records=1000, stream=out, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.0625
        progress.advance(10, 100)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 12  # the first, every tenth, the summary
    assert lines[5] == "import t  500/1,000 records  5.0 kB  160 records/s  ETA 3 s"
    assert lines[-1] == "import t: 1,000 records, 10.0 kB in 6.2 s (160 records/s)"


def test_progress_on_a_terminal_redraws_one_bar_at_most_ten_times_a_second() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress("export t", records=200, stream=out, tty=True, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.03125
        progress.advance(1, 10)
    draws = out.getvalue().split("\r")[1:]
    assert len(draws) == 25  # the first step, then every 4th (0.125 s: over 0.1 s)
    assert draws[-1] == (
        "export t  [#########-----------]  97/200 records  970 B  32 records/s  ETA 3 s\x1b[K"
    )


def discobase_command(
    tmp_path: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """``python -m discobase ARGS`` in ``tmp_path``, with only the given settings (no token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOBASE_"))}
    env["PYTHONPATH"] = str(Path(__file__).parent.parent)
    env["DISCOBASE_OFFLINE_STATE"] = str(tmp_path / "offline-state")
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "discobase", *args],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_python_m_discobase_runs_offline_and_reports_progress_in_plain_lines(tmp_path):
    rows = tmp_path / "scores.csv"
    rows.write_text("player,points\n" + "".join(f"p{i},{i}\n" for i in range(1200)))
    done = discobase_command(
        tmp_path, "import", "--offline", "scores", str(rows), "--create", "--key", "player"
    )
    assert done.returncode == 0, done.stderr
    assert "imported 1,200 records into scores" in done.stdout
    progress = [line for line in done.stderr.splitlines() if line.startswith("import scores")]
    assert progress[0].startswith("import scores  500/1,200 records")
    assert progress[-1].startswith("import scores: 1,200 records")
    assert "\r" not in done.stderr

    # A second run sees what the first wrote: the offline Discord is kept in the state file.
    exported = discobase_command(tmp_path, "export", "--offline", "scores", "-o", "out.jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["player"] for line in lines) == sorted(
        f"p{i}" for i in range(1200)
    )
    # ``--offline-state -`` starts from an empty Discord and keeps nothing.
    fresh = discobase_command(tmp_path, "tables", "--offline", "--offline-state", "-")
    assert (fresh.returncode, fresh.stdout) == (0, "no tables\n")
    assert discobase_command(tmp_path, "tables", "--offline").stdout.startswith(
        "scores\t1200 records"
    )
    (tmp_path / "offline-state").write_bytes(b"not a state file")
    damaged = discobase_command(tmp_path, "tables", "--offline")
    assert damaged.returncode == 2 and "not an offline state file" in damaged.stderr


def test_offline_state_kept_encrypted_across_runs_and_keygen(tmp_path):
    made = discobase_command(tmp_path, "keygen")
    key = made.stdout.strip()
    assert made.returncode == 0 and discobase.EncryptionKey.parse(key).id in made.stderr
    rows = tmp_path / "secrets.jsonl"
    rows.write_text('{"name": "launch code", "value": 1234}\n')
    args = ("import", "--offline", "secrets", str(rows), "--create", "--key", "name")
    assert discobase_command(tmp_path, *args, DISCOBASE_ENCRYPTION_KEY=key).returncode == 0
    assert b"launch code" not in (tmp_path / "offline-state").read_bytes()

    exported = discobase_command(
        tmp_path, "export", "--offline", "secrets", DISCOBASE_ENCRYPTION_KEY=key
    )
    assert json.loads(exported.stdout) == {"name": "launch code", "value": 1234}
    refused = discobase_command(tmp_path, "export", "--offline", "secrets")
    assert refused.returncode == 1 and "is encrypted" in refused.stderr
    assert not refused.stdout
    bad = discobase_command(tmp_path, "tables", "--offline", DISCOBASE_ENCRYPTION_KEY="abc")
    assert bad.returncode == 2 and "DISCOBASE_ENCRYPTION_KEY" in bad.stderr


async def test_encryption_required_refuses_plain_storage_until_rotate_key_seals_it(
    simcord_env, home, capsys, monkeypatch
):
    bot = simcord_env.bot
    before = await contents(simcord_env, home)
    key = discobase.EncryptionKey.generate()
    monkeypatch.delenv("DISCOBASE_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("DISCOBASE_ENCRYPTION_REQUIRED", "true")
    assert await run(["tables", "--guild", "home"], bot) == 2
    assert "set DISCOBASE_ENCRYPTION_KEY too" in capsys.readouterr().err
    monkeypatch.setenv("DISCOBASE_ENCRYPTION_KEY", key.text())
    assert await run(["tables", "--guild", "home"], bot) == 1
    assert "is not encrypted" in capsys.readouterr().err
    # rotate-key ignores the requirement: sealing what is not encrypted is its job.
    assert await run(["rotate-key", "--guild", "home"], bot) == 0
    assert f"key {key.id}: " in capsys.readouterr().out
    assert await run(["check", "--guild", "home"], bot) == 0
    assert "2 tables, 10 records" in capsys.readouterr().out
    monkeypatch.setenv("DISCOBASE_ENCRYPTION_REQUIRED", "maybe")
    assert await run(["tables", "--guild", "home"], bot) == 2
    assert "true or false" in capsys.readouterr().err
    after = await contents(simcord_env, home, encryption_key=key, encryption_required=True)
    assert after == before


async def test_rotate_key_encrypts_a_database_and_moves_it_to_a_new_key(
    simcord_env, home, capsys, monkeypatch
):
    bot = simcord_env.bot
    before = await contents(simcord_env, home)
    old, new = discobase.EncryptionKey.generate(), discobase.EncryptionKey.generate()
    monkeypatch.delenv("DISCOBASE_ENCRYPTION_KEY", raising=False)
    assert await run(["rotate-key", "--guild", "home"], bot) == 2
    assert "NEW,OLD" in capsys.readouterr().err

    monkeypatch.setenv("DISCOBASE_ENCRYPTION_KEY", old.text())
    assert await run(["rotate-key", "--guild", "home"], bot) == 0
    assert f"key {old.id}: " in capsys.readouterr().out
    monkeypatch.delenv("DISCOBASE_ENCRYPTION_KEY")
    assert await run(["tables", "--guild", "home"], bot) == 1
    assert f"is encrypted (key id {old.id})" in capsys.readouterr().err

    monkeypatch.setenv("DISCOBASE_ENCRYPTION_KEY", new.text())
    assert await run(["tables", "--guild", "home"], bot) == 1
    assert f"under key id {old.id}" in capsys.readouterr().err
    monkeypatch.setenv("DISCOBASE_ENCRYPTION_KEY", f"{new.text()},{old.text()}")
    simcord_env.inject_error("PATCH", "/channels/*/messages/*", status=400, times=1)
    assert await run(["rotate-key", "--guild", "home"], bot) == 1
    assert "run it again to finish" in capsys.readouterr().err
    assert await run(["rotate-key", "--guild", "home"], bot) == 0
    assert f"key {new.id}: " in capsys.readouterr().out

    monkeypatch.setenv("DISCOBASE_ENCRYPTION_KEY", new.text())
    assert await run(["rotate-key", "--guild", "home"], bot) == 0
    assert "0 messages sealed again" in capsys.readouterr().out
    assert await contents(simcord_env, home, encryption_key=new.text()) == before


async def test_reshard_grows_a_table_and_refuses_a_count_it_cannot_grow_to(
    simcord_env, home, capsys
):
    bot = simcord_env.bot
    before = await contents(simcord_env, home)
    assert await run(["reshard", "notes", "--shards", "3", "--guild", "home"], bot) == 1
    assert "multiple" in capsys.readouterr().err
    assert await run(["reshard", "nothing", "--shards", "4", "--guild", "home"], bot) == 1
    assert await contents(simcord_env, home) == before
    assert await run(["reshard", "notes", "--shards", "4", "--guild", "home"], bot) == 0
    assert "notes: 2 shards, now 4" in capsys.readouterr().out
    after = await contents(simcord_env, home)
    assert after["notes"][0]["shards"] == 4
    before["notes"][0]["shards"] = 4
    assert after == before  # every record kept
    assert await run(["check", "--guild", "home"], bot) == 0
    capsys.readouterr()
    assert await run(["reshard", "notes", "--shards", "4", "--guild", "home"], bot) == 0
    assert capsys.readouterr().out == "notes: 4 shards already: nothing to do\n"
    assert await contents(simcord_env, home) == after
