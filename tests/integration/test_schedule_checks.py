"""Schedule-aware checks on real files, with time injected through the clock."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporter.checks.table import evaluate
from exporter.config import TargetConfig
from exporter.sources.supervisor import scan_into_index
from exporter.target import Target
from exporter.timestamps import make_stamper
from tests.conftest import make_config, scrape, value, wait_for, write_backup
from tests.peers import WebhookReceiver

UTC = ZoneInfo("UTC")
NAME = "backup-%Y-%m-%d-%H-%M-%S"


def at(text: str, zone: ZoneInfo = UTC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def name_for(ts: float, zone: ZoneInfo = UTC) -> str:
    return datetime.fromtimestamp(ts, zone).strftime(NAME) + ".db"


def judge(directory: Path, now: float, **settings):
    target = Target(TargetConfig(path=str(directory), **settings), lambda: now)
    scan_into_index(target, lambda: now)
    snap = target.index.snapshot()
    return snap, evaluate(snap, target, now)


# --- timestamps from names ------------------------------------------------------------


def test_old_name_with_fresh_mtime_is_old(tmp_path: Path) -> None:
    now = at("2026-05-28T12:00:00")
    write_backup(tmp_path / "backup-2026-05-20-02-00-00.db", 4096)  # mtime: now (a fresh copy)
    write_backup(tmp_path / "README.txt", 10)
    snap, results = judge(tmp_path, now, timestamp="name", name_format=NAME, timezone="UTC")
    assert snap.newest.mtime == at("2026-05-20T02:00:00")
    assert snap.count == 1
    assert snap.unparsed == 1
    assert not results["age"].ok
    assert "8d 10h 0m old" in results["age"].reason
    # By mtime the same file is fresh.
    _, by_mtime = judge(tmp_path, time.time(), patterns=["backup-*"])
    assert by_mtime["age"].ok


@pytest.mark.parametrize(
    ("zone", "name", "expected_utc"),
    [
        ("UTC", "backup-2026-03-29-02-30-00", "2026-03-29T02:30:00"),
        ("Asia/Shanghai", "backup-2026-05-28-02-00-00", "2026-05-27T18:00:00"),
        # Europe/Berlin: the spring-forward day, and the autumn hour that happens twice
        # (the first occurrence, CEST, is taken).
        ("Europe/Berlin", "backup-2026-03-29-01-30-00", "2026-03-29T00:30:00"),
        ("Europe/Berlin", "backup-2026-03-29-03-30-00", "2026-03-29T01:30:00"),
        ("Europe/Berlin", "backup-2026-10-25-02-30-00", "2026-10-25T00:30:00"),
    ],
)
def test_name_timezones_and_dst(zone: str, name: str, expected_utc: str) -> None:
    stamp = make_stamper("name", NAME, zone)
    assert stamp(name + ".db.gz", 0.0) == at(expected_utc)
    assert stamp("sub/" + name + ".db", 0.0) == at(expected_utc)


def test_unparsable_names() -> None:
    stamp = make_stamper("name", NAME, "UTC")
    assert stamp("backup-latest.db", 5.0) is None
    assert stamp("backup-2026-13-01-00-00-00.db", 5.0) is None  # month 13
    assert make_stamper("mtime", None, None)("anything", 5.0) == 5.0


def test_unparsed_files_counted_live(tmp_path: Path, start_daemon) -> None:
    write_backup(tmp_path / "backup-2026-05-20-02-00-00.db", 4096)
    config = make_config(
        targets=[{"name": "t", "path": str(tmp_path), "timestamp": "name", "name_format": NAME}]
    )
    daemon = start_daemon(config)
    write_backup(tmp_path / "backup-manual.db", 4096)
    wait_for(lambda: value(scrape(daemon.url), "backup_unparsed_files", target="t") == 1)
    assert value(scrape(daemon.url), "backup_count", target="t") == 1
    os.rename(tmp_path / "backup-manual.db", tmp_path / "backup-2026-05-21-02-00-00.db")
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="t") == 2)
    assert value(scrape(daemon.url), "backup_unparsed_files", target="t") == 0


# --- schedules -------------------------------------------------------------------------

NIGHTLY = {"schedule": "0 2 * * *", "grace": "1h", "timezone": "UTC"}


def test_nightly_schedule_deadline(tmp_path: Path) -> None:
    write_backup(tmp_path / "b1.db", 4096, at("2026-05-27T02:10:00"))
    _, results = judge(tmp_path, at("2026-05-28T02:59:59"), **NIGHTLY)
    assert results["schedule"].ok
    assert results["schedule"].next_change_at == at("2026-05-28T03:00:00")
    assert "age" not in results  # the schedule replaces the fixed 24h age check
    _, results = judge(tmp_path, at("2026-05-28T03:00:00"), **NIGHTLY)
    assert not results["schedule"].ok
    assert (
        results["schedule"].reason
        == "no backup for the run of 2026-05-28 02:00 UTC (0 2 * * *, grace 1h)"
    )
    write_backup(tmp_path / "b2.db", 4096, at("2026-05-28T03:20:00"))  # late, but it came
    _, results = judge(tmp_path, at("2026-05-28T03:30:00"), **NIGHTLY)
    assert results["schedule"].ok
    assert results["schedule"].next_change_at == at("2026-05-29T03:00:00")


def test_backup_before_the_run_does_not_satisfy_it(tmp_path: Path) -> None:
    write_backup(tmp_path / "b1.db", 4096, at("2026-05-28T01:59:00"))
    _, results = judge(tmp_path, at("2026-05-28T03:00:00"), **NIGHTLY)
    assert not results["schedule"].ok


@pytest.mark.parametrize(
    ("schedule", "newest", "ok_at", "late_at"),
    [
        # Weekly on Sunday at 03:00: Sunday 2026-05-31.
        ("0 3 * * 0", "2026-05-24T03:30:00", "2026-05-31T03:59:00", "2026-05-31T04:00:00"),
        # Hourly at :15.
        ("15 * * * *", "2026-05-28T10:16:00", "2026-05-28T12:14:00", "2026-05-28T12:15:00"),
    ],
)
def test_weekly_and_hourly(
    tmp_path: Path, schedule: str, newest: str, ok_at: str, late_at: str
) -> None:
    write_backup(tmp_path / "b.db", 4096, at(newest))
    settings = {"schedule": schedule, "grace": "1h", "timezone": "UTC"}
    assert judge(tmp_path, at(ok_at), **settings)[1]["schedule"].ok
    assert not judge(tmp_path, at(late_at), **settings)[1]["schedule"].ok


def test_schedule_alert_fires_at_the_deadline(tmp_path: Path, start_daemon) -> None:
    receiver = WebhookReceiver()
    deadline = at("2026-05-28T03:00:00")
    offset = deadline - 1.5 - time.time()  # the daemon's clock: 1.5 s before the deadline
    write_backup(tmp_path / "db" / "b1.db", 4096, at("2026-05-27T02:10:00"))
    config = make_config(
        targets=[{"name": "db", "path": str(tmp_path / "db"), **NIGHTLY}],
        notify={"urls": [receiver.url()]},
    )
    try:
        daemon = start_daemon(config, clock=lambda: time.time() + offset)
        s = scrape(daemon.url)
        assert value(s, "backup_deadline_timestamp_seconds", target="db") == deadline
        assert value(s, "backup_next_expected_timestamp_seconds", target="db") == at(
            "2026-05-28T02:00:00"
        )
        assert value(s, "backup_check_ok", target="db", check="schedule") == 1
        wait_for(lambda: receiver.requests, timeout=10)
        late = time.time() + offset - deadline
        assert receiver.requests[0]["title"] == "[FIRING] backup late: db"
        assert 0 <= late < 1.0, f"fired {late:.2f}s after the deadline"
    finally:
        receiver.stop()


# --- gaps, shrink, retention ---------------------------------------------------------------


def nightly_series(
    directory: Path, days: int, end: str, skip: tuple[int, ...] = (), size: int = 4096
) -> None:
    last = at(end)
    for day in range(days):
        if day in skip:
            continue
        ts = last - day * 86400
        write_backup(directory / name_for(ts), size, ts)


def test_two_missing_nights_are_named(tmp_path: Path) -> None:
    nightly_series(tmp_path, 30, "2026-05-28T02:05:00", skip=(3, 9))
    now = at("2026-05-28T09:00:00")
    _, results = judge(tmp_path, now, retention="30d", **NIGHTLY)
    gaps = results["gaps"]
    assert not gaps.ok
    assert gaps.reason.startswith("2 runs without a backup in the last 30d")
    assert gaps.reason.endswith(": 2026-05-19 02:00 UTC, 2026-05-25 02:00 UTC")
    nightly_series(tmp_path, 1, "2026-05-25T02:05:00")
    nightly_series(tmp_path, 1, "2026-05-19T02:05:00")
    assert judge(tmp_path, now, retention="30d", **NIGHTLY)[1]["gaps"].ok


def test_gaps_from_an_inferred_interval(tmp_path: Path) -> None:
    nightly_series(tmp_path, 10, "2026-05-28T02:05:00", skip=(4,))
    _, results = judge(tmp_path, at("2026-05-28T09:00:00"), gaps=True)
    assert not results["gaps"].ok
    assert results["gaps"].reason.startswith("1 runs without a backup")


def sparse(path: Path, size: int, ts: float) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)
    os.utime(path, (ts, ts))


def test_shrunk_backup_fires_but_normal_variance_does_not(tmp_path: Path) -> None:
    now = at("2026-05-28T09:00:00")
    for day, factor in enumerate([1.0, 0.93, 1.08, 0.95, 1.1, 0.9, 1.02, 1.05]):
        sparse(tmp_path / f"b{day}.db", int(10_000_000 * factor), now - (10 - day) * 86400)
    _, results = judge(tmp_path, now)
    assert results["shrink"].ok
    sparse(tmp_path / "b9.db", 1_000_000, now - 3600)
    _, results = judge(tmp_path, now)
    assert not results["shrink"].ok
    assert "10% of the median" in results["shrink"].reason
    assert "growth" not in results  # off unless max_growth is set
    _, results = judge(tmp_path, now, max_growth="50%")
    assert results["growth"].ok


def test_retention_violation_and_resolution(tmp_path: Path) -> None:
    nightly_series(tmp_path, 35, "2026-05-28T02:05:00")
    now = at("2026-05-28T09:00:00")
    _, results = judge(tmp_path, now, retention="30d", max_count=31)
    assert not results["retention"].ok
    assert results["retention"].reason.startswith("4 backups older than the 30d retention")
    assert not results["count"].ok
    for path in sorted(tmp_path.iterdir())[:5]:  # prune
        path.unlink()
    _, results = judge(tmp_path, now, retention="30d", max_count=31)
    assert results["retention"].ok
    assert results["count"].ok
