"""Helpers shared across the test tiers (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from tests.conftest import fetch
from tests.peers import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def make_db(path: Path, rows: int = 2000) -> Path:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE api_keys (id INTEGER PRIMARY KEY, key TEXT, quota INTEGER)")
        db.executemany(
            "INSERT INTO api_keys (key, quota) VALUES (?, ?)",
            [(f"key-{i:06d}-" + "x" * 40, i) for i in range(rows)],
        )
        db.execute("CREATE INDEX keys_by_quota ON api_keys (quota)")
    return path


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def base_config(tmp_path: Path, targets: list[dict], urls: list[str] | None = None) -> dict:
    return {
        "state_dir": str(tmp_path / "state"),
        "retry_interval": "0.2s",
        "targets": [{"verify": "none", "settle": 0, **t} for t in targets],
        "notify": {"urls": urls or [], "retry_initial": "0.2s", "retry_max": "0.5s"},
    }


def titles(receiver: WebhookReceiver) -> list[str]:
    return [r["title"] for r in receiver.requests]


def query(url: str, expr: str) -> list[dict]:
    try:
        data = json.loads(fetch(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}"))
    except urllib.error.HTTPError as exc:
        pytest.fail(f"{expr}: {exc.read().decode()}")
    assert data["status"] == "success", data
    return data["data"]["result"]


KEPT_LINT = 'backup_count non-histogram and non-summary metrics should not have "_count" suffix'


def promtool_problems(promtool: str, exposition: str) -> list[str]:
    """What `promtool check metrics` says of an exposition, a line per problem."""
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
