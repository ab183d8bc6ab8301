"""backup-monitor agrees with the seed guide's two shell scripts on the same directory."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import parse_samples, value, write_backup
from tests.helpers import ROOT, run_cli

# Copies of the guide's scripts (tests/seed/README.md), so this runs in every clone.
SEED = ROOT / "tests" / "seed"


@pytest.mark.parametrize(
    ("newest_age", "newest_size"), [(3600, 40960), (2 * 86400, 40960), (600, 100)]
)
def test_same_answers_as_the_scripts(tmp_path: Path, newest_age: int, newest_size: int) -> None:
    now = time.time()
    for day in range(1, 6):
        write_backup(
            tmp_path / f"backup-2026-01-0{day}-02-00-00.db", 40960, now - newest_age - day * 86400
        )
    write_backup(tmp_path / "backup-newest.db", newest_size, now - newest_age)
    write_backup(tmp_path / "unrelated.log", 5, now)

    metrics = subprocess.run(
        ["bash", str(SEED / "backup-metrics.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    legacy = parse_samples(metrics)
    warnings = subprocess.run(
        ["bash", str(SEED / "monitor-backup.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout

    result = run_cli("check", "--target", f"quota-proxy={tmp_path}", "--format", "json", env=None)
    doc = json.loads(result.stdout)["targets"][0]
    # The default pattern is "*": narrow it as the scripts do for the count.
    narrowed = run_cli("check", "-c", str(_config(tmp_path)), "--format", "json")
    narrow = json.loads(narrowed.stdout)["targets"][0]

    assert narrow["count"] == value(legacy, "quota_proxy_backup_count")
    assert doc["count"] == narrow["count"] + 1
    assert (
        abs(narrow["newest"]["age_seconds"] - value(legacy, "quota_proxy_backup_age_seconds")) < 3
    )
    checks = {c["name"]: c["ok"] for c in narrow["checks"]}
    assert checks["age"] == ("older than 24 hours" not in warnings)
    assert checks["size"] == ("size abnormal" not in warnings)


def _config(directory: Path) -> Path:
    path = directory.parent / "quota.yml"
    path.write_text(
        f"targets:\n  - name: quota-proxy\n    path: {directory}\n    patterns: ['backup-*.db']\n"
    )
    return path
