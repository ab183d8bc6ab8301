"""Job results end to end: the real `backup-monitor run` around real commands, pings as
curl sends them, a real webhook receiver counting notifications."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from exporter.alerting.redact import SECRETS
from exporter.sources.jobs import TAIL_KEPT, job_book
from tests.conftest import fetch, make_config, scrape, value, wait_for, write_backup
from tests.helpers import base_config, run_cli, write_config
from tests.peers import WebhookReceiver, free_port

RUN = [sys.executable, "-m", "exporter", "run"]


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def job_daemon(start_daemon, tmp_path: Path, webhook: WebhookReceiver | None = None, **job):
    write_backup(tmp_path / "db" / "backup-1.db", 4096, time.time() - 3600)
    targets = [
        {"name": "db", "path": str(tmp_path / "db"), "job": job},
        {"name": "plain", "path": str(tmp_path / "db")},
    ]
    notify = {"urls": [webhook.url()] if webhook else [], "min_interval": "0s"}
    return start_daemon(make_config(targets=targets, notify=notify))


def base(daemon) -> str:
    return daemon.url.removesuffix("/metrics")


def ping(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    """A ping as `curl -fsS [--data-binary @file] URL` sends it: the HTTP status."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wrapper(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`backup-monitor run --url URL --target db ARGS...`, to its end."""
    return subprocess.run(
        [*RUN, "--url", url, "--target", "db", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_job(daemon, *command: str) -> subprocess.CompletedProcess[str]:
    return wrapper(base(daemon), "--", *command)


def check(daemon, name: str) -> dict:
    target = next(t for t in daemon.status()["targets"] if t["name"] == "db")
    return next(c for c in target["checks"] if c["name"] == name)


def notifications(webhook: WebhookReceiver, check_summary: str) -> list[dict]:
    return [r for r in webhook.requests if check_summary in r["title"]]


def test_a_failed_run_reaches_the_webhook_with_its_status_and_output(
    tmp_path: Path, start_daemon, webhook
) -> None:
    daemon = job_daemon(start_daemon, tmp_path, webhook)
    done = run_job(daemon, "sh", "-c", "echo dumping quota.db; echo 'disk I/O error' >&2; exit 3")
    exited = time.time()
    assert done.returncode == 3
    assert done.stdout == "dumping quota.db\n"  # passed through as it came
    assert done.stderr == "disk I/O error\n"
    wait_for(lambda: notifications(webhook, "backup job failed"), timeout=5)
    assert webhook.times[-1] - exited < 5
    (firing,) = notifications(webhook, "backup job failed")
    assert firing["title"] == "[FIRING] backup job failed: db"
    assert "exited with status 3" in firing["message"]
    assert "dumping quota.db" in firing["message"]
    assert "disk I/O error" in firing["message"]
    samples = scrape(daemon.url)
    assert value(samples, "backup_job_last_exit_code", target="db") == 3
    assert value(samples, "backup_job_runs_total", target="db", result="failure") == 1
    assert value(samples, "backup_job_last_duration_seconds", target="db") > 0
    assert value(samples, "backup_job_running", target="plain") is None  # no job: no series

    # The next run succeeds and writes its backup: one resolution, nothing else.
    backup = tmp_path / "db" / "backup-2.db"
    done = run_job(daemon, "sh", "-c", f"head -c 4096 /dev/zero > {backup}")
    assert done.returncode == 0
    wait_for(lambda: len(notifications(webhook, "backup job failed")) == 2, timeout=5)
    assert notifications(webhook, "backup job failed")[1]["title"].startswith("[RESOLVED]")
    assert check(daemon, "job_output")["ok"]
    # And a second failure is a second notification.
    run_job(daemon, "false")
    wait_for(lambda: len(notifications(webhook, "backup job failed")) == 3, timeout=5)
    assert len(webhook.requests) == 3


def test_run_exits_with_the_status_of_a_signal_or_a_missing_command(
    tmp_path: Path, start_daemon
) -> None:
    daemon = job_daemon(start_daemon, tmp_path)
    done = run_job(daemon, "sh", "-c", "kill -KILL $$")
    assert done.returncode == 128 + signal.SIGKILL
    wait_for(lambda: daemon.targets[0].job.status.last is not None)
    assert daemon.targets[0].job.status.last.exit_code == 137
    missing = run_job(daemon, str(tmp_path / "no-such-script"))
    assert missing.returncode == 127  # as a shell says "command not found"
    assert "cannot run" in missing.stderr
    wait_for(lambda: daemon.targets[0].job.status.last.exit_code == 127)
    assert "cannot run" in daemon.targets[0].job.status.last.tail


def test_a_hung_run_fails_at_max_runtime_and_a_stop_is_passed_on(
    tmp_path: Path, start_daemon
) -> None:
    daemon = job_daemon(start_daemon, tmp_path, max_runtime="1s")
    wrapper = subprocess.Popen(
        [*RUN, "--url", base(daemon), "--target", "db", "--", "sleep", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: daemon.targets[0].job.status.running_since is not None)
        assert value(scrape(daemon.url), "backup_job_running", target="db") == 1
        wait_for(lambda: not check(daemon, "job")["ok"], timeout=5)
        assert "still running after" in check(daemon, "job")["reason"]
        wrapper.send_signal(signal.SIGTERM)  # systemd stopping the job: sleep gets it too
        assert wrapper.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        wrapper.kill()
        wrapper.wait()
    wait_for(lambda: daemon.targets[0].job.status.running_since is None)
    assert daemon.targets[0].job.status.last.exit_code == 143


def test_the_job_runs_when_the_daemon_is_down(tmp_path: Path) -> None:
    made = tmp_path / "made"
    nobody = f"http://127.0.0.1:{free_port()}"
    done = wrapper(nobody, "--timeout", "2", "sh", "-c", f"echo done > {made}; exit 4")
    assert done.returncode == 4
    assert made.read_text() == "done\n"
    assert "warning: cannot report start" in done.stderr
    assert "warning: cannot report 4" in done.stderr


def test_pings_in_the_healthchecks_forms(tmp_path: Path, start_daemon) -> None:
    daemon = job_daemon(start_daemon, tmp_path)
    url = base(daemon) + "/ping/db"
    record = daemon.targets[0].job
    assert ping(url + "/start") == 200
    assert record.status.running_since is not None
    assert ping(url + "/7", b"pg_dump: error: connection refused\n") == 200
    assert record.status.last.exit_code == 7
    assert record.status.last.tail == "pg_dump: error: connection refused\n"
    assert ping(url + "/fail") == 200
    assert record.status.last.exit_code == 1
    assert ping(url) == 200
    assert record.status.last.ok
    assert ping(url + "/0", b"done") == 200
    assert (record.status.successes, record.status.failures) == (2, 2)
    for bad in ("/256", "/-1", "/abc", "/start/x"):
        assert ping(url + bad) == 400, bad
    assert ping(base(daemon) + "/ping/plain") == 404  # no job:
    assert ping(base(daemon) + "/ping/nope") == 404
    head = urllib.request.Request(url, method="HEAD")
    with pytest.raises(urllib.error.HTTPError, match="405"):
        urllib.request.urlopen(head, timeout=5)
    assert (record.status.successes, record.status.failures) == (2, 2)  # nothing recorded


def test_a_body_over_100_kb_keeps_its_end(tmp_path: Path, start_daemon) -> None:
    daemon = job_daemon(start_daemon, tmp_path)
    body = b"".join(b"line %06d\n" % i for i in range(20000))  # 220 KB
    assert ping(base(daemon) + "/ping/db/fail", body) == 200
    tail = daemon.targets[0].job.status.last.tail
    assert tail.encode() == body[-TAIL_KEPT:]
    output = check_document(daemon)["last_run"]["output"]
    assert body.decode().endswith(output)
    assert len(output) == 4096


def check_document(daemon) -> dict:
    return next(t for t in daemon.status()["targets"] if t["name"] == "db")["job"]


def test_a_token_is_required_where_configured(tmp_path: Path, start_daemon) -> None:
    daemon = job_daemon(start_daemon, tmp_path, token="n0t-a-guessable-token")
    url = base(daemon) + "/ping/db"
    assert ping(url) == 401
    assert ping(url + "?token=wrong-token") == 401
    assert ping(url, headers={"Authorization": "Bearer wrong"}) == 401
    assert daemon.targets[0].job.status.last is None
    assert ping(url + "?token=n0t-a-guessable-token") == 200
    assert ping(url + "/start", headers={"Authorization": "Bearer n0t-a-guessable-token"}) == 200
    done = wrapper(base(daemon), "--token", "n0t-a-guessable-token", "--", "true")
    assert done.returncode == 0
    assert done.stderr == ""
    assert daemon.targets[0].job.status.successes == 2


def test_a_successful_run_that_wrote_nothing_alerts_within_output_grace(
    tmp_path: Path, start_daemon, webhook
) -> None:
    daemon = job_daemon(start_daemon, tmp_path, webhook, output_grace="1s")
    done = run_job(daemon, "true")
    reported = time.time()
    assert done.returncode == 0
    wait_for(lambda: notifications(webhook, "backup job wrote no backup"), timeout=5)
    assert webhook.times[-1] - reported < 1 + 2  # output_grace plus delivery
    (firing,) = notifications(webhook, "backup job wrote no backup")
    assert "reported success" in firing["message"]
    assert "wrote no backup within 1s" in firing["message"]
    assert not notifications(webhook, "backup job failed")
    write_backup(tmp_path / "db" / "backup-3.db", 4096)  # the backup shows up late
    wait_for(lambda: len(notifications(webhook, "backup job wrote no backup")) == 2, timeout=5)
    assert notifications(webhook, "backup job wrote no backup")[1]["title"].startswith("[RESOLVED]")


def test_a_job_log_gives_runs_in_the_daemon(tmp_path: Path, start_daemon) -> None:
    log = tmp_path / "backup.log"
    log.write_text("2026-11-26 02:00:03 Backup failed\n")  # yesterday's: not a new run
    daemon = job_daemon(
        start_daemon,
        tmp_path,
        log={"path": str(log), "start": "Backup started", "success": "Backup completed"}
        | {"failure": r"Backup failed( \(exit (?P<code>\d+)\))?"},
    )
    record = daemon.targets[0].job
    with log.open("a") as handle:
        handle.write("Backup started\nBackup failed (exit 12)\n")
    wait_for(lambda: record.status.last is not None, timeout=5)
    assert record.status.last.exit_code == 12
    assert record.status.failures == 1
    wait_for(lambda: not check(daemon, "job")["ok"])


def test_check_reads_the_runs_the_daemon_saved(tmp_path: Path) -> None:
    write_backup(tmp_path / "db" / "backup-1.db", 4096, time.time() - 60)
    config = write_config(
        tmp_path / "config.yml",
        base_config(tmp_path, [{"name": "db", "path": str(tmp_path / "db"), "job": None}]),
    )
    job_book(str(tmp_path / "state")).record("db").finish(
        5, "rsync: connection unexpectedly closed"
    )
    saved = (tmp_path / "state" / "jobs" / "db.json").read_bytes()
    done = run_cli("check", "--config", str(config))
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"(?m)^db +job +FAIL ", done.stdout)
    assert "exited with status 5" in done.stdout
    assert (tmp_path / "state" / "jobs" / "db.json").read_bytes() == saved  # only read


def test_the_token_is_never_shown(tmp_path: Path, start_daemon, caplog) -> None:
    token = "tok-" + "7f3a9c" * 4
    config = write_config(
        tmp_path / "config.yml",
        base_config(tmp_path, [{"name": "db", "path": str(tmp_path), "job": {"token": token}}]),
    )
    shown = run_cli("config", "check", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert token not in shown.stdout + shown.stderr
    assert "token: <secret>" in shown.stdout
    with caplog.at_level(logging.DEBUG):
        daemon = job_daemon(start_daemon, tmp_path, token=token)
        assert ping(base(daemon) + f"/ping/db?token={token}") == 200
        assert ping(base(daemon) + "/ping/db?token=wrong") == 401
        wait_for(lambda: "/ping/db" in caplog.text)  # the request was logged, without it
    assert token not in caplog.text
    assert token not in json.dumps(daemon.status())
    assert token not in fetch(daemon.url)
    assert SECRETS.scrub(f"GET /ping/db?token={token}") == "GET /ping/db?token=…"
