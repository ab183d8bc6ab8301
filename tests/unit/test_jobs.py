"""Job results: run records (kept across restarts), the checks `job` and `job_output`,
and the log follower through appends, rename rotation and copytruncate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from exporter.checks.table import check_job, check_job_output, evaluate_target
from exporter.config import TargetConfig
from exporter.sources.joblog import OUTPUT_KEPT, LogFollow
from exporter.sources.jobs import TAIL_KEPT, JobRecord, job_book
from exporter.target import Target
from tests.helpers import ROOT


class Clock:
    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job_target(clock: Clock, tmp_path: Path | None = None, **job: object) -> Target:
    config = TargetConfig.model_validate(
        {"name": "db", "path": "/b", "settle": "0s", "verify": "none", "job": job or None}
    )
    target = Target(config, clock)
    path = str(tmp_path / "db.json") if tmp_path else None
    target.job = JobRecord("db", path, clock)
    return target


def test_job_config_forms() -> None:
    def job_of(value: object) -> object:
        return TargetConfig.model_validate({"path": "/b", "job": value}).job

    assert job_of(None).max_runtime == 6 * 3600  # `job:` alone: on, with the defaults
    assert job_of(True).output_grace == 60
    assert job_of(False) is None
    assert TargetConfig.model_validate({"path": "/b"}).job is None
    with pytest.raises(ValueError, match="success or failure"):
        job_of({"log": {"path": "/var/log/x"}})
    with pytest.raises(ValueError, match="invalid regular expression"):
        job_of({"log": {"path": "/var/log/x", "success": "("}})


def test_a_failed_run_fails_until_the_next_success() -> None:
    clock = Clock()
    target = job_target(clock)
    assert check_job(target.index.snapshot(), target, clock.now).ok
    target.job.start()
    clock.now += 90
    target.job.finish(3, "dumping quota.db\nsqlite3: disk I/O error\n")
    result = check_job(target.index.snapshot(), target, clock.now)
    assert not result.ok
    assert "exited with status 3" in result.reason
    assert "after 1m 30s" in result.reason
    assert result.detail == "dumping quota.db\nsqlite3: disk I/O error"
    target.job.start()  # a new run starting does not resolve the failure
    assert not check_job(target.index.snapshot(), target, clock.now).ok
    target.job.finish(0)
    assert check_job(target.index.snapshot(), target, clock.now).ok


def test_a_run_outliving_max_runtime_fails_at_exactly_that_moment() -> None:
    clock = Clock()
    target = job_target(clock, max_runtime="10m")
    target.job.start()
    result = check_job(target.index.snapshot(), target, clock.now)
    assert result.ok
    assert result.next_change_at == clock.now + 600
    clock.now += 601
    result = check_job(target.index.snapshot(), target, clock.now)
    assert not result.ok
    assert "still running after 10m" in result.reason


def test_the_notification_quotes_the_first_lines_of_the_output() -> None:
    clock = Clock()
    target = job_target(clock)
    target.job.finish(1, "\n".join(f"line {i}" for i in range(50)))
    detail = check_job(target.index.snapshot(), target, clock.now).detail
    assert detail.splitlines()[0] == "line 0"
    assert detail.splitlines()[-1] == "... (30 more lines)"


def test_a_successful_run_must_leave_a_new_backup_within_output_grace() -> None:
    clock = Clock()
    target = job_target(clock, output_grace="1m")
    target.index.apply_scan({"old.db": (5000, clock.now - 86400)}, set(), clock.now, 0.0)
    target.job.start()
    clock.now += 30
    target.job.finish(0)
    snap = target.index.snapshot()
    waiting = check_job_output(snap, target, clock.now)
    assert waiting.ok
    assert waiting.next_change_at == clock.now + 60
    clock.now += 61
    failing = check_job_output(snap, target, clock.now)
    assert not failing.ok
    assert "reported success" in failing.reason
    assert "wrote no backup within 1m" in failing.reason
    # The backup arrives late, dated after the run's start: resolved.
    target.index.apply_scan({"new.db": (5000, clock.now - 80)}, set(), clock.now, 0.0)
    assert check_job_output(target.index.snapshot(), target, clock.now).ok


def test_a_run_without_a_start_counts_backups_of_the_last_max_runtime() -> None:
    clock = Clock()
    target = job_target(clock, max_runtime="1h", output_grace="0s")
    target.index.apply_scan({"b.db": (5000, clock.now - 1800)}, set(), clock.now, 0.0)
    target.job.finish(0)  # a bare success ping
    assert check_job_output(target.index.snapshot(), target, clock.now).ok
    clock.now += 3600
    target.job.finish(0)
    assert not check_job_output(target.index.snapshot(), target, clock.now).ok


def test_a_reported_run_makes_the_evaluation_due() -> None:
    clock = Clock()
    target = job_target(clock)
    first = evaluate_target(target, clock.now)
    assert evaluate_target(target, clock.now) is first
    target.job.finish(2)
    second = evaluate_target(target, clock.now)
    assert second is not first
    assert not second.results["job"].ok


def test_run_records_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    book = job_book(str(tmp_path), clock)
    record = book.record("db")
    assert book.record("db") is record
    record.finish(4, "x" * (TAIL_KEPT + 10))
    record.start()
    again = job_book(str(tmp_path), clock).record("db").status
    assert again.running_since == clock.now  # a run in progress stays in progress
    assert again.last.exit_code == 4
    assert len(again.last.tail) == TAIL_KEPT
    assert (again.failures, again.successes) == (1, 0)
    assert os.stat(tmp_path / "jobs").st_mode & 0o777 == 0o700


def test_a_damaged_record_is_moved_aside(tmp_path: Path, caplog) -> None:
    (tmp_path / "jobs").mkdir()
    bad = {
        "version": 1,
        "last": {"started_at": None, "ended_at": 1.0, "exit_code": 999, "tail": ""},
    }
    (tmp_path / "jobs" / "db.json").write_text(json.dumps(bad))
    status = job_book(str(tmp_path)).record("db").status
    assert status.last is None
    assert [p.name.startswith("db.json.corrupt-") for p in (tmp_path / "jobs").iterdir()] == [True]
    assert "not a job record" in caplog.text


@pytest.fixture
def follow(tmp_path: Path):
    from exporter.config import JobLogConfig

    config = JobLogConfig(
        path=str(tmp_path / "backup.log"),
        start="Backup started",
        success="Backup completed",
        failure=r"Backup failed(: exit (?P<code>\d+))?",
    )
    log = LogFollow(config, JobRecord("db", None))
    yield log
    log.close()


def append(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_a_log_gives_runs_from_new_lines_only(tmp_path: Path, follow: LogFollow) -> None:
    log = tmp_path / "backup.log"
    append(log, "Backup started", "Backup failed: exit 9")  # before following: old news
    follow.poll()
    assert follow.record.status.last is None
    append(log, "Backup started", "copying quota.db")
    follow.poll()
    assert follow.record.status.running_since is not None
    log.open("a").write("Backup fail")  # half a line: judged once complete
    follow.poll()
    assert follow.record.status.last is None
    append(log, "ed: exit 5")
    follow.poll()
    last = follow.record.status.last
    assert last.exit_code == 5
    assert last.started_at is not None
    assert last.tail == "Backup started\ncopying quota.db\nBackup failed: exit 5"
    append(log, "Backup completed")
    follow.poll()
    assert follow.record.status.last.ok
    assert follow.record.status.successes == 1


def test_a_log_created_later_is_read_from_its_start(tmp_path: Path, follow: LogFollow) -> None:
    follow.poll()
    append(tmp_path / "backup.log", "Backup failed")
    follow.poll()
    assert follow.record.status.last.exit_code == 1  # no (?P<code>) in the line: 1


def test_rotation_by_rename_reads_the_old_file_to_its_end(
    tmp_path: Path, follow: LogFollow
) -> None:
    log = tmp_path / "backup.log"
    append(log, "earlier")
    follow.poll()
    append(log, "Backup started")
    os.rename(log, tmp_path / "backup.log.1")
    append(tmp_path / "backup.log.1", "Backup completed")  # the writer still holds the old file
    append(log, "Backup started", "Backup failed: exit 2")  # and the new file gets more
    follow.poll()
    status = follow.record.status
    assert (status.successes, status.failures) == (1, 1)
    assert status.last.exit_code == 2


def test_copytruncate_is_read_again_from_the_start(tmp_path: Path, follow: LogFollow) -> None:
    log = tmp_path / "backup.log"
    append(log, "a long line of earlier output " * 10)
    follow.poll()
    (tmp_path / "backup.log.1").write_bytes(log.read_bytes())
    os.truncate(log, 0)
    follow.poll()
    append(log, "Backup completed")
    follow.poll()
    assert follow.record.status.successes == 1


def test_a_runs_output_from_a_log_is_bounded(tmp_path: Path, follow: LogFollow) -> None:
    log = tmp_path / "backup.log"
    follow.poll()
    append(log, "Backup started", *(f"progress {i:06d} " + "x" * 80 for i in range(2000)))
    append(log, "Backup failed")
    follow.poll()
    tail = follow.record.status.last.tail
    assert len(tail) <= OUTPUT_KEPT
    assert tail.endswith("Backup failed")


def test_the_quota_proxy_example_reports_its_job() -> None:
    text = (ROOT / "examples" / "quota-proxy.yml").read_text()
    assert (
        "backup-monitor run --config /etc/backup-monitor/config.yml --target quota-proxy --" in text
    )
