"""Restore drills end to end: the `drill` command, a drill in the daemon on its schedule
(time moved, not slept), its notification, and a scratch directory that fills up."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

from tests.conftest import make_config, scrape, small_tmpfs, value, wait_for
from tests.helpers import base_config, make_db, run_cli, write_config
from tests.peers import WebhookReceiver


def quota_proxy(tmp_path: Path, newest_rows: int) -> dict:
    """The guide's layout: a live quota.db and nightly backups, the newest with
    ``newest_rows`` rows of api_keys."""
    (tmp_path / "data").mkdir()
    (tmp_path / "backups").mkdir()
    live = make_db(tmp_path / "data" / "quota.db", rows=1000)
    old = make_db(tmp_path / "backups" / "backup-2026-10-31-02-00-00.db", rows=990)
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    newest = make_db(tmp_path / "backups" / "backup-2026-11-01-02-00-00.db", rows=newest_rows)
    os.utime(newest, (time.time() - 3600, time.time() - 3600))
    return {
        "name": "quota-proxy",
        "path": str(tmp_path / "backups"),
        "drill": {
            "live": str(live),
            "queries": [{"sql": "SELECT COUNT(*) FROM api_keys", "min": 1}],
            "scratch_dir": str(tmp_path / "scratch"),
        },
    }


def test_the_drill_command(tmp_path: Path) -> None:
    target = quota_proxy(tmp_path, newest_rows=1000)
    config = write_config(tmp_path / "config.yml", base_config(tmp_path, [target]))
    done = run_cli("drill", "--config", str(config), "--target", "quota-proxy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backup   backup-2026-11-01-02-00-00.db" in done.stdout
    assert "api_keys        1000        1000  100%" in done.stdout
    assert "PASS     restored backup-2026-11-01-02-00-00.db" in done.stdout
    short = make_db(tmp_path / "short.db", rows=10)
    done = run_cli("drill", "-c", str(config), "--target", "quota-proxy", "--backup", str(short))
    assert done.returncode == 1
    assert "FAIL     api_keys: 10 rows restored, 1000 live (1%, min 90%)" in done.stdout
    as_json = run_cli("drill", "-c", str(config), "--target", "quota-proxy", "--format", "json")
    document = json.loads(as_json.stdout)
    assert document["ok"] is True
    assert document["results"][0]["tables"] == [
        {"name": "api_keys", "restored": 1000, "live": 1000}
    ]
    assert list((tmp_path / "scratch").iterdir()) == []
    assert run_cli("drill", "-c", str(config), "--target", "nope").returncode == 2
    os.rename(tmp_path / "backups", tmp_path / "moved")
    gone = run_cli("drill", "-c", str(config), "--target", "quota-proxy")
    assert gone.returncode == 3, gone.stdout + gone.stderr


class MovableClock:
    """The daemon's clock: real time plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_a_scheduled_drill_alerts_with_the_table_and_agrees_with_the_command(
    tmp_path: Path, start_daemon
) -> None:
    receiver = WebhookReceiver()
    try:
        target = quota_proxy(tmp_path, newest_rows=10)
        target["drill"]["schedule"] = "0 4 1 * *"
        clock = MovableClock()
        daemon = start_daemon(
            make_config(
                targets=[{**target, "settle": 0}],
                notify={"urls": [receiver.url()], "min_interval": "0s"},
            ),
            clock=clock,
        )
        record = daemon.targets[0].drill
        assert record.status.results == ()
        samples = scrape(daemon.url)
        assert value(samples, "backup_drill_ok", target="quota-proxy") is None
        # The 1st of next month, 04:00: the verifier's next round starts the drill.
        clock.offset = daemon.targets[0].drill_schedule.next_after(time.time()) - time.time() + 1
        wait_for(lambda: record.status.results, timeout=15)
        wait_for(lambda: any("restore drill failed" in r["title"] for r in receiver.requests))
        (message,) = [r for r in receiver.requests if "restore drill failed" in r["title"]]
        assert "api_keys: 10 rows restored, 1000 live (1%, min 90%)" in message["message"]
        samples = scrape(daemon.url)
        assert value(samples, "backup_drill_ok", target="quota-proxy") == 0
        assert (
            value(samples, "backup_drill_runs_total", target="quota-proxy", result="failure") == 1
        )
        assert value(samples, "backup_drill_duration_seconds", target="quota-proxy") > 0
        document = daemon.status()["targets"][0]["drill"]
        assert document["results"][0]["tables"] == [
            {"name": "api_keys", "restored": 10, "live": 1000}
        ]
        # The command judges the same backup the same way.
        config = write_config(tmp_path / "config.yml", base_config(tmp_path, [target]))
        done = run_cli("drill", "-c", str(config), "--target", "quota-proxy", "--format", "json")
        command = json.loads(done.stdout)["results"][0]
        scheduled = document["results"][0]
        assert (command["backup"], command["ok"], command["reason"]) == (
            scheduled["backup"],
            scheduled["ok"],
            scheduled["reason"],
        )
        # Not run again before the next month, whatever the rounds.
        runs = record.status.successes + record.status.failures
        daemon.verifier.start_due_drills()
        assert record.status.successes + record.status.failures == runs
    finally:
        receiver.stop()


def test_a_drill_out_of_scratch_space_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "scratch", "8m") as scratch:
        (tmp_path / "backups").mkdir()
        big = make_db(tmp_path / "big.db", rows=120_000)  # 12 MB: more than the 8 MB there
        compressed = tmp_path / "backups" / "backup-1.db.gz"
        compressed.write_bytes(gzip.compress(big.read_bytes()))  # small, but not once restored
        target = {"name": "q", "path": str(tmp_path / "backups"), "drill": {}}
        target["drill"]["scratch_dir"] = str(scratch)
        config = write_config(tmp_path / "config.yml", base_config(tmp_path, [target]))
        for backup, reason in ((big, "needs twice that"), (compressed, "full while restoring")):
            done = run_cli("drill", "-c", str(config), "--target", "q", "--backup", str(backup))
            assert done.returncode == 1, done.stdout + done.stderr
            assert reason in done.stdout
            assert list(scratch.iterdir()) == []
