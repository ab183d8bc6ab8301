"""`backup-monitor check`: table, JSON and exit codes; the CLI's help and version."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from exporter.commands.demo import make_demo_backups
from tests.conftest import write_backup
from tests.helpers import ROOT, run_cli


def test_all_pass_exit_0(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup-1.db", 4096)
    result = run_cli("check", "--target", f"db={tmp_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "CHECK", "STATUS", "DETAIL"]
    assert any(line.startswith("db") and " age " in line and " ok " in line for line in lines)


def test_failing_check_exit_1_and_json(tmp_path: Path) -> None:
    write_backup(tmp_path / "backup-1.db", 10, time.time() - 2 * 86400)
    result = run_cli("check", "--target", f"db={tmp_path}", "--format", "json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)  # the /api/v1/targets document
    assert (doc["version"], doc["state"]) == (1, "failing")
    target = doc["targets"][0]
    assert target["count"] == 1
    checks = {c["name"]: c for c in target["checks"]}
    assert checks["age"]["ok"] is False
    assert "2d 0h 0m old (max 24h)" in checks["age"]["reason"]
    assert checks["size"] == {
        "name": "size",
        "ok": False,
        "reason": "newest backup backup-1.db is 10 B (min 1.0 KiB)",
        "firing": False,
        "firing_since": None,
    }


def test_unreadable_target_exit_3(tmp_path: Path) -> None:
    write_backup(tmp_path / "ok" / "backup-1.db", 4096)
    result = run_cli("check", "-t", str(tmp_path / "ok"), "-t", str(tmp_path / "missing"))
    assert result.returncode == 3
    assert "directory does not exist" in result.stdout


def test_help_and_version() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "check", "config", "demo"):
        assert command in result.stdout
    serve = run_cli("serve", "--help")
    assert "--target" in serve.stdout
    assert "--listen" in serve.stdout
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("backup-monitor, version ")


def test_demo_rerun_adds_no_backups(tmp_path: Path) -> None:
    first = make_demo_backups(tmp_path, now=time.time() - 3600)
    assert len(first) == 5
    again = make_demo_backups(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)
    assert time.time() - again[-1].stat().st_mtime < 120  # the newest made fresh again


def test_make_run_takes_a_listen_address() -> None:
    root = ROOT
    planned = subprocess.run(
        ["make", "-n", "-C", str(root), "run", "LISTEN=127.0.0.1:9999"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "demo --dir demo-backups --listen 127.0.0.1:9999" in planned.stdout
