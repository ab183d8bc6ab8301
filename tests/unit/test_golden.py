"""Golden exposition: fixed files and a fixed clock render exactly tests/golden/*.prom.

A diff is either a bug or a deliberate change to explain in the commit; regenerate
with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.checks.table import evaluate_target
from exporter.config import Config
from exporter.counters import DaemonStats
from exporter.sources.jobs import JobRecord
from exporter.sources.supervisor import scan_into_index
from exporter.target import Target
from exporter.web.metrics import BackupCollector
from tests.conftest import write_backup
from tests.helpers import ROOT

GOLDEN = ROOT / "tests" / "golden"
NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z

# name -> (size, seconds before NOW)
FIXTURE = {
    "quota-proxy": {
        "backup-2026-05-25-02-00-00.db": (40960, 3 * 86400 + 66400),
        "backup-2026-05-26-02-00-00.db": (40960, 2 * 86400 + 66400),
        "backup-2026-05-27-02-00-00.db.gz": (9000, 86400 + 66400),
        "backup-2026-05-28-02-00-00.db": (45056, 66400),
        "backup-2026-05-28-03-00-00.db.part": (100, 10),
        # Still being written (changed 10 s ago, settle is 30 s): sizes judge the one before.
        "backup-2026-05-28-20-26-30.db": (512, 10),
    },
    "stale": {"dump.sql": (2_000_000, 3 * 86400)},
    # Timestamps from names (mtimes all 2 minutes old): nightly at 02:00 UTC, 05-25 missing,
    # 05-20 past the 7-day retention (plus its 1-day grace), one name that does not parse.
    "nightly": {
        **{f"backup-2026-05-{d}-02-00-00.db": (50_000, 120) for d in (20, 21, 22, 23, 24, 26, 27)},
        "backup-2026-05-28-02-00-00.db": (20_000, 120),
        "notes-backup.txt": (100, 120),
    },
    "tiny": {"dump.sql": (12, 60)},
    "empty": {},
}


def render(tmp_path: Path, namespace: str) -> str:
    for target, files in FIXTURE.items():
        (tmp_path / target).mkdir()
        for name, (size, ago) in files.items():
            write_backup(tmp_path / target / name, size, NOW - ago)
    config = Config.model_validate(
        {
            "namespace": namespace,
            "targets": [
                {"path": str(tmp_path / "quota-proxy"), "min_count": 3, "labels": {"env": "prod"}},
                {"path": str(tmp_path / "stale"), "max_age": "2d", "job": {}},
                {
                    "path": str(tmp_path / "nightly"),
                    "timestamp": "name",
                    "name_format": "backup-%Y-%m-%d-%H-%M-%S",
                    "timezone": "UTC",
                    "schedule": "0 2 * * *",
                    "retention": "7d",
                    "max_count": 7,
                },
                {"path": str(tmp_path / "tiny")},
                {"path": str(tmp_path / "empty")},
                {"path": str(tmp_path / "missing")},
            ],
        }
    )
    targets = [Target(t, lambda: NOW) for t in config.targets]
    for target in targets:
        scan_into_index(target, lambda: NOW)
    # The stale target's job: its last run failed an hour ago after 100 s.
    targets[1].job = JobRecord("stale", None, lambda: NOW)
    targets[1].job.start(at=NOW - 3700)
    targets[1].job.finish(2, "pg_dump: error: connection refused", at=NOW - 3600)
    registry = CollectorRegistry()
    for target in targets:
        evaluate_target(target, NOW)
    collector = BackupCollector(lambda: targets, DaemonStats(), namespace, lambda: NOW)
    registry.register(collector)
    return generate_latest(registry).decode()


@pytest.mark.parametrize("namespace", ["backup", "quota_proxy_backup"])
def test_exposition_matches_golden(tmp_path: Path, namespace: str) -> None:
    text = render(tmp_path, namespace)
    golden = GOLDEN / f"metrics-{namespace}.prom"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
