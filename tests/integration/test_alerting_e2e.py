"""Alerting end to end: real files, a real SMTP server, a real webhook receiver."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.conftest import make_config, scrape, value, wait_for, write_backup
from tests.peers import SmtpSink, WebhookReceiver, free_port, mail_text


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp():
    sink = SmtpSink()
    yield sink
    sink.stop()


def alert_config(tmp_path: Path, urls: list[str], **notify) -> dict:
    return {
        "targets": [{"name": "db", "path": str(tmp_path / "db")}],
        "state_dir": str(tmp_path / "state"),
        "notify": {"urls": urls, "retry_initial": "0.2s", "retry_max": "1s", **notify},
    }


def settle(daemon, rounds: int = 3) -> None:
    """Let the evaluator run a few more rounds (woken, not slept for), then drain delivery."""
    evaluator = daemon.alerting.evaluator
    for _ in range(rounds):
        before = evaluator.rounds
        evaluator.wake()
        wait_for(lambda before=before: evaluator.rounds > before)
    wait_for(lambda: daemon.alerting.delivery.pending() == 0)


def test_stale_backup_fires_once_and_resolves_once(
    tmp_path: Path, start_daemon, smtp, webhook
) -> None:
    write_backup(tmp_path / "db" / "backup-2026-01-01-02-00-00.db", 40960, time.time() - 93900)
    config = make_config(**alert_config(tmp_path, [smtp.url(), webhook.url()]))
    daemon = start_daemon(config)

    wait_for(lambda: len(smtp.messages) == 1 and len(webhook.requests) == 1)
    mail = smtp.messages[0]
    assert mail["Subject"] == "[FIRING] backup too old: db"
    body = mail_text(mail)
    assert "newest backup backup-2026-01-01-02-00-00.db is 1d 2h 5m old (max 24h)" in body
    assert f"Host:      {socket.gethostname()}" in body
    assert f"Directory: {tmp_path / 'db'}" in body
    assert "Size:      40.0 KiB (min 1.0 KiB)" in body
    hook = webhook.requests[0]
    assert hook["title"] == "[FIRING] backup too old: db"
    assert hook["type"] == "failure"
    assert "1d 2h 5m old" in hook["message"]
    assert value(scrape(daemon.url), "backup_alert_firing", target="db", check="age") == 1

    write_backup(tmp_path / "db" / "backup-2026-01-02-02-00-00.db", 40960)
    wait_for(lambda: len(smtp.messages) == 2 and len(webhook.requests) == 2)
    assert smtp.messages[1]["Subject"] == "[RESOLVED] backup too old: db"
    assert webhook.requests[1]["type"] == "success"
    assert value(scrape(daemon.url), "backup_alert_firing", target="db", check="age") == 0
    # Counted once apprise returns, just after the peers have the message.
    wait_for(
        lambda: value(scrape(daemon.url), "backup_monitor_notifications_total", result="sent") == 4
    )

    settle(daemon)
    assert (len(smtp.messages), len(webhook.requests)) == (2, 2)


def test_restart_while_firing_sends_nothing_new(tmp_path: Path, start_daemon, webhook) -> None:
    write_backup(tmp_path / "db" / "backup-1.db", 10)  # too small
    config = make_config(**alert_config(tmp_path, [webhook.url()]))
    first = start_daemon(config)
    wait_for(lambda: len(webhook.requests) == 1)
    assert webhook.requests[0]["title"] == "[FIRING] backup too small: db"
    first.stop()
    second = start_daemon(config)
    assert second.alerting.state.is_firing("db", "size")
    settle(second)
    assert len(webhook.requests) == 1


def test_failed_delivery_is_delivered_after_restart(tmp_path: Path, start_daemon, webhook) -> None:
    webhook.mode = "fail"
    write_backup(tmp_path / "db" / "backup-1.db", 10)
    config = make_config(**alert_config(tmp_path, [webhook.url()]))
    first = start_daemon(config)
    wait_for(
        lambda: value(scrape(first.url), "backup_monitor_notifications_total", result="failed") >= 2
    )
    assert value(scrape(first.url), "backup_monitor_notifications_pending") == 1
    first.stop()
    webhook.mode = "ok"
    start_daemon(config)
    wait_for(lambda: len(webhook.requests) == 1)
    assert webhook.requests[0]["title"] == "[FIRING] backup too small: db"


@pytest.mark.parametrize("failure", ["closed", "fail", "hang"])
def test_dead_endpoint_retries_and_recovers(
    tmp_path: Path, start_daemon, smtp, failure: str
) -> None:
    port = free_port()
    receiver = None if failure == "closed" else WebhookReceiver(port)
    if receiver:
        receiver.mode = failure
    write_backup(tmp_path / "db" / "backup-1.db", 10)
    config = make_config(
        **alert_config(tmp_path, [f"json://127.0.0.1:{port}/hook", smtp.url()], timeout="2s")
    )
    daemon = start_daemon(config)
    # The email is not held up by the dead webhook.
    wait_for(lambda: len(smtp.messages) == 1)
    wait_for(
        lambda: (
            value(scrape(daemon.url), "backup_monitor_notifications_total", result="failed") >= 2
        )
    )
    started = time.monotonic()
    scrape(daemon.url)
    assert time.monotonic() - started < 1.0  # metrics on time while delivery struggles
    if receiver is None:
        receiver = WebhookReceiver(port)
    else:
        receiver.mode = "ok"
    try:
        wait_for(lambda: len(receiver.requests) >= 1, timeout=15)
        assert receiver.requests[0]["title"] == "[FIRING] backup too small: db"
        assert len(smtp.messages) == 1  # the email was not sent again
    finally:
        receiver.stop()


def test_age_breach_without_file_activity_fires_on_time(
    tmp_path: Path, start_daemon, webhook
) -> None:
    mtime = time.time() - 1.0
    write_backup(tmp_path / "db" / "backup-1.db", 4096, mtime)
    config = make_config(
        **alert_config(tmp_path, [webhook.url()]),
    )
    config = config.model_copy(
        update={"targets": [config.targets[0].model_copy(update={"max_age": 2.0})]}
    )
    start_daemon(config)
    assert webhook.requests == []
    wait_for(lambda: webhook.requests, timeout=10)
    delay = time.time() - (mtime + 2.0)
    assert webhook.requests[0]["title"] == "[FIRING] backup too old: db"
    assert 0 <= delay < 5.0, f"breach noticed {delay:.2f}s late"


def test_heartbeat_beats_and_stops_when_scanning_breaks(
    tmp_path: Path, start_daemon, webhook, monkeypatch
) -> None:
    write_backup(tmp_path / "db" / "backup-1.db", 4096)
    config = make_config(
        retry_interval="0.1s",
        **alert_config(
            tmp_path,
            [],
            heartbeat={"url": f"http://127.0.0.1:{webhook.port}/ping", "interval": "1s"},
        ),
    )
    daemon = start_daemon(config)
    wait_for(lambda: len(webhook.requests) >= 2)
    assert webhook.requests[0] == {"path": "/ping"}
    assert value(scrape(daemon.url), "backup_monitor_heartbeat_last_success_timestamp_seconds") > 0

    def broken() -> None:
        raise RuntimeError("scan loop broken")

    monkeypatch.setattr(daemon.supervisor, "tick", broken)
    wait_for(lambda: not daemon.health()[0])
    beats = daemon.alerting.heartbeat
    wait_for(lambda: beats.withheld >= 1)
    count = len(webhook.requests)
    withheld = beats.withheld
    wait_for(lambda: beats.withheld >= withheld + 2)  # two more rounds, no ping
    assert len(webhook.requests) == count
