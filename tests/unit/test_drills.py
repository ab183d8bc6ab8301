"""Restore drills on real SQLite files: what restores, what does not, what the live
database must never notice, and when drills are due."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from exporter.checks.table import check_drill
from exporter.config import DrillConfig, TargetConfig
from exporter.counters import DaemonStats
from exporter.target import Target
from exporter.verify.drill import DrillRecord, drill_book, pick_backups, run_drill
from exporter.verify.pool import Verifier
from tests.helpers import make_db

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z, a Thursday


def drill(tmp_path: Path, backup: Path, **options: object):
    config = DrillConfig.model_validate(options)
    return run_drill(str(backup), NOW, config, str(tmp_path / "scratch"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture
def live(tmp_path: Path) -> Path:
    (tmp_path / "live").mkdir()
    return make_db(tmp_path / "live" / "quota.db", rows=1000)


def test_a_good_backup_restores_and_matches_the_live_database(tmp_path: Path, live: Path) -> None:
    (tmp_path / "b").mkdir()
    backup = make_db(tmp_path / "b" / "backup-1.db", rows=1000)
    before = (digest(backup), digest(live), siblings(backup), siblings(live))
    result = drill(
        tmp_path,
        backup,
        live=str(live),
        queries=[{"sql": "SELECT COUNT(*) FROM api_keys", "min": 1000}],
    )
    assert result.ok, result.reason
    assert [(t.name, t.restored, t.live) for t in result.tables] == [("api_keys", 1000, 1000)]
    assert set(result.phases) == {"copy", "restore", "queries", "compare"}
    assert result.duration >= sum(result.phases.values())
    # Nothing touched: same bytes, no -journal or -wal next to either, scratch emptied.
    assert (digest(backup), digest(live), siblings(backup), siblings(live)) == before
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_backup_with_far_fewer_rows_fails_naming_the_table(tmp_path: Path, live: Path) -> None:
    backup = make_db(tmp_path / "backup-1.db", rows=10)
    result = drill(tmp_path, backup, live=str(live))
    assert not result.ok
    assert result.reason == "api_keys: 10 rows restored, 1000 live (1%, min 90%)"
    assert [(t.name, t.restored, t.live) for t in result.tables] == [("api_keys", 10, 1000)]


def test_a_corrupt_backup_fails(tmp_path: Path) -> None:
    backup = make_db(tmp_path / "backup-1.db", rows=5000)
    size = backup.stat().st_size
    with backup.open("r+b") as handle:  # bytes overwritten mid-file, header intact
        handle.seek(size // 2)
        handle.write(os.urandom(8192))
    result = drill(tmp_path, backup)
    assert not result.ok
    assert "integrity_check" in result.reason or "malformed" in result.reason
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_backup_of_another_schema_fails(tmp_path: Path, live: Path) -> None:
    backup = tmp_path / "backup-1.db"
    with closing(sqlite3.connect(backup)) as db, db:
        db.execute("CREATE TABLE api_keys (id INTEGER PRIMARY KEY, key TEXT)")  # no quota
    result = drill(tmp_path, backup, live=str(live))
    assert not result.ok
    assert result.reason == "schema differs from the live database: api_keys"
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as db, db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    assert drill(tmp_path, other, live=str(live)).reason == (
        "tables missing from the backup: api_keys"
    )


def test_a_compressed_backup_is_restored(tmp_path: Path, live: Path) -> None:
    plain = make_db(tmp_path / "plain.db", rows=1000)
    backup = tmp_path / "backup-1.db.gz"
    backup.write_bytes(gzip.compress(plain.read_bytes()))
    result = drill(tmp_path, backup, live=str(live))
    assert result.ok, result.reason
    assert result.tables[0].restored == 1000
    truncated = tmp_path / "backup-2.db.gz"
    truncated.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    assert not drill(tmp_path, truncated).ok


def test_a_live_database_in_wal_mode_with_a_writer_is_read_not_blocked(
    tmp_path: Path, live: Path
) -> None:
    writer = sqlite3.connect(live)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("INSERT INTO api_keys (key, quota) VALUES ('new', 1)")
        writer.commit()
        writer.execute("BEGIN IMMEDIATE")  # a write transaction open during the drill
        writer.execute("INSERT INTO api_keys (key, quota) VALUES ('pending', 2)")
        backup = make_db(tmp_path / "backup-1.db", rows=1000)
        result = drill(tmp_path, backup, live=str(live))
        assert result.ok, result.reason
        assert result.tables[0].live == 1001  # the committed rows, not the pending one
        writer.commit()  # the writer was never blocked or disturbed
    finally:
        writer.close()
    with closing(sqlite3.connect(live)) as check:
        assert check.execute("SELECT COUNT(*) FROM api_keys").fetchone() == (1002,)


def test_queries_bound_what_a_restore_must_answer(tmp_path: Path) -> None:
    backup = make_db(tmp_path / "backup-1.db", rows=10)
    count = "SELECT COUNT(*) FROM api_keys"
    assert drill(tmp_path, backup, queries=[{"sql": count, "max": 10}]).ok
    assert drill(tmp_path, backup, queries=[{"sql": count, "min": 11}]).reason == (
        f"{count}: 10 (min 11)"
    )
    rows = "SELECT key FROM api_keys"
    assert not drill(tmp_path, backup, queries=[{"sql": rows, "rows_min": 11}]).ok
    assert "no such table" in drill(tmp_path, backup, queries=[{"sql": "SELECT * FROM x"}]).reason


def test_a_drill_refuses_a_scratch_dir_without_room(tmp_path: Path, monkeypatch) -> None:
    backup = make_db(tmp_path / "backup-1.db", rows=100)
    monkeypatch.setattr("exporter.verify.drill._free", lambda _directory: 1000)
    result = drill(tmp_path, backup)
    assert not result.ok
    assert "needs twice that" in result.reason


def test_pick_newest_and_one_older_at_random() -> None:
    files = {f"b{i}.db": (100, NOW - i * 86400) for i in range(30)}
    assert pick_backups(files, "b0.db", ["newest"]) == [("b0.db", NOW)]
    picked = pick_backups(files, "b0.db", ["newest", "random"])
    assert picked[0] == ("b0.db", NOW)
    assert picked[1][0] in files
    assert picked[1][0] != "b0.db"
    assert pick_backups({"b0.db": (100, NOW)}, "b0.db", ["newest", "random"]) == [("b0.db", NOW)]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drill_target(tmp_path: Path, clock: Clock, **drill_options: object) -> Target:
    (tmp_path / "b").mkdir(exist_ok=True)
    make_db(tmp_path / "b" / "backup-1.db", rows=100)
    config = TargetConfig.model_validate(
        {
            "name": "q",
            "path": str(tmp_path / "b"),
            "timezone": "UTC",
            "settle": "0s",
            "drill": drill_options or None,
        }
    )
    target = Target(config, clock)
    target.index.apply_scan({"backup-1.db": (8192, clock.now - 60)}, set(), clock.now, 0.0)
    target.drill = drill_book(str(tmp_path / "state"), clock).record("q")
    return target


def test_drills_run_when_due_and_a_restart_does_not_run_one_early(tmp_path: Path) -> None:
    clock = Clock(NOW)
    target = drill_target(tmp_path, clock, schedule="0 4 1 * *")
    verifier = Verifier(lambda: [target], DaemonStats(), 1, clock, str(tmp_path / "state"))
    try:
        verifier.start_due_drills()
        assert target.drill.status.results == ()  # 05-28: the first is due 06-01 04:00
        clock.now = 1_780_286_400.0  # 2026-06-01T04:00:00Z
        verifier.start_due_drills()
        verifier._pool.shutdown(wait=True)
        status = target.drill.status
        assert status.ok is True
        assert status.ran_at == clock.now
    finally:
        verifier.stop()
    # A restart an hour later: the record is read back and nothing is due until July.
    clock.now += 3600
    again = drill_book(str(tmp_path / "state"), clock).record("q")
    assert again.status.ran_at == 1_780_286_400.0
    assert again.status.results[0].tables[0].restored == 100
    target.drill = again
    verifier = Verifier(lambda: [target], DaemonStats(), 1, clock, str(tmp_path / "state"))
    try:
        verifier.start_due_drills()
        verifier._pool.shutdown(wait=True)
    finally:
        verifier.stop()
    assert target.drill.status.successes == 1


def test_the_drill_check_fails_on_a_failed_drill_or_two_missed_periods(tmp_path: Path) -> None:
    clock = Clock(NOW)
    target = drill_target(tmp_path, clock, schedule="0 4 * * *")  # daily
    snap = target.index.snapshot()
    result = check_drill(snap, target, clock.now)
    assert result.ok
    # The second 04:00 after drills began (05-30), plus one drill's time (timeout).
    assert result.next_change_at == NOW + 27200 + 86400 + 600
    clock.now = result.next_change_at + 1
    missed = check_drill(snap, target, clock.now)
    assert not missed.ok
    assert "no successful drill since" in missed.reason
    backup = make_db(tmp_path / "short.db", rows=1)
    live = make_db(tmp_path / "live.db", rows=100)
    config = DrillConfig(live=str(live))
    target.drill.add_round([run_drill(str(backup), NOW, config, str(tmp_path / "s"))])
    failed = check_drill(snap, target, clock.now)
    assert not failed.ok
    assert failed.reason == "drill of short.db: api_keys: 1 rows restored, 100 live (1%, min 90%)"
    shutil.copy(live, tmp_path / "good.db")
    target.drill.add_round([run_drill(str(tmp_path / "good.db"), NOW, config, str(tmp_path / "s"))])
    assert check_drill(snap, target, clock.now).ok


def test_a_damaged_drill_record_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "q.json").write_text('{"version": 1, "results": "nope"}')
    record = DrillRecord("q", str(tmp_path / "drills" / "q.json"), lambda: NOW)
    assert record.status.results == ()
    assert record.status.since == NOW  # a new window, saved
    names = sorted(p.name for p in (tmp_path / "drills").iterdir())
    assert names[0] == "q.json"
    assert names[1].startswith("q.json.corrupt-")


def test_the_quota_proxy_example_drills_monthly_against_the_live_database() -> None:
    from exporter.config import load_config
    from tests.helpers import ROOT

    config = load_config(str(ROOT / "examples" / "quota-proxy.yml"))
    drill = config.targets[0].drill
    assert drill is not None
    assert drill.schedule == "0 4 1 * *"
    assert drill.live == "/opt/roc/quota-proxy/data/quota.db"
    assert [q.sql for q in drill.queries] == ["SELECT COUNT(*) FROM api_keys"]
