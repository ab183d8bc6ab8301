"""Notification URLs: apprise config files, tags, `notify test`, and no secret in output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.config import load_config
from tests.conftest import make_config, wait_for, write_backup
from tests.helpers import run_cli
from tests.peers import WebhookReceiver, free_port

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def webhooks():
    receivers = [WebhookReceiver(), WebhookReceiver()]
    yield receivers
    for receiver in receivers:
        receiver.stop()


@pytest.mark.parametrize(
    "text",
    [
        "json://a/x mailto://u:p@b?to=c@d.e,f@g.h",
        "json://a/x\n  mailto://u:p@b?to=c@d.e,f@g.h\n",
        '["json://a/x", "mailto://u:p@b?to=c@d.e,f@g.h"]',
        "[json://a/x, 'mailto://u:p@b?to=c@d.e,f@g.h']",
    ],
)
def test_env_urls(text: str) -> None:
    """White space, newlines or a YAML/JSON list separate URLs; a comma is part of one."""
    config = load_config(None, environ={"BACKUP_MONITOR_NOTIFY_URLS": text})
    assert [u.url for u in config.notify.urls] == ["json://a/x", "mailto://u:p@b?to=c@d.e,f@g.h"]


def test_tags_route_targets_to_urls(tmp_path: Path, start_daemon, webhooks) -> None:
    ops, dba = webhooks
    apprise_file = tmp_path / "apprise.yml"
    apprise_file.write_text(f"urls:\n  - {dba.url()}:\n      tag: dba\n")
    for name in ("web", "db"):
        write_backup(tmp_path / name / "backup-1.db", 10)
    config = make_config(
        targets=[
            {"path": str(tmp_path / "web"), "notify_tags": ["ops"]},
            {"path": str(tmp_path / "db"), "notify_tags": ["dba"]},
        ],
        notify={"urls": [{"url": ops.url(), "tags": ["ops"]}], "config": str(apprise_file)},
    )
    daemon = start_daemon(config)
    wait_for(lambda: ops.requests and dba.requests)
    wait_for(lambda: daemon.alerting.delivery.pending() == 0)
    assert [r["title"] for r in ops.requests] == ["[FIRING] backup too small: web"]
    assert [r["title"] for r in dba.requests] == ["[FIRING] backup too small: db"]


def test_notify_test_command(tmp_path: Path, webhooks) -> None:
    good = webhooks[0]
    config = tmp_path / "c.yml"
    config.write_text(f"notify:\n  urls: [{good.url()}]\n")
    result = run_cli("notify", "test", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok  ")
    assert good.requests[0]["title"] == "[TEST] backup-monitor notification"
    dead = f"json://127.0.0.1:{free_port()}/x"
    config.write_text(f"notify:\n  urls: [{good.url()}, {dead}]\n")
    result = run_cli("notify", "test", "--config", str(config))
    assert result.returncode == 1
    assert [line[:4] for line in result.stdout.splitlines()] == ["ok  ", "FAIL"]


def test_bad_apprise_url_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("notify:\n  urls: ['nosuchscheme://x']\n")
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert "notify.urls[0]: apprise cannot use" in result.stderr


def test_secrets_never_printed_or_logged(tmp_path: Path, start_daemon, caplog) -> None:
    urls = [
        f"mailto://ops:{SECRET}@127.0.0.1:{free_port()}?to=ops@example.com&from=bm@example.com&mode=insecure",
        f"json://user:{SECRET}@127.0.0.1:{free_port()}/hook",
    ]
    config = tmp_path / "c.yml"
    config.write_text(
        "notify:\n  urls:\n"
        + "".join(f"    - '{u}'\n" for u in urls)
        + f"  heartbeat: {{url: 'https://hc.example/ping/{SECRET}'}}\n"
    )
    checked = run_cli("config", "check", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "mailto://" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr
    tested = run_cli("notify", "test", "--config", str(config))
    assert tested.returncode == 1
    assert SECRET not in tested.stdout + tested.stderr
    write_backup(tmp_path / "db" / "backup-1.db", 10)
    with caplog.at_level(logging.DEBUG):
        daemon = start_daemon(
            make_config(
                targets=[{"path": str(tmp_path / "db")}], notify={"urls": urls, "timeout": "1s"}
            )
        )
        wait_for(lambda: daemon.alerting.delivery.failed >= 2)
    assert "will retry" in caplog.text
    assert SECRET not in caplog.text
