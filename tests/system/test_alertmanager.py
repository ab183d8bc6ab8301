"""The daemons post their own alerts to a real Alertmanager cluster (two instances from the
Debian package, clustered on loopback), which tells the webhook once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import fetch, make_config, require_tool, scrape, value, wait_for, write_backup
from tests.peers import WebhookReceiver, free_port

# A new group of alerts is sent after GROUP_WAIT; changes to it after GROUP_INTERVAL, longer
# than the cluster's peer timeout (2 s), so one instance's notification log has reached
# the other before the other's next flush (Alertmanager's own HA advice, scaled down).
GROUP_WAIT, GROUP_INTERVAL = 1.0, 4.0


class Alertmanager:
    def __init__(self, binary: str, workdir: Path, config: Path, peers: list[int] | None) -> None:
        self.port, self.cluster = free_port(), free_port()
        self.binary, self.workdir, self.config = binary, workdir, config
        self.peers = peers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        cluster = [f"--cluster.listen-address=127.0.0.1:{self.cluster}"]
        if self.peers is None:
            cluster = ["--cluster.listen-address="]  # alone: no gossip
        else:
            cluster += [f"--cluster.advertise-address=127.0.0.1:{self.cluster}"]
            cluster += [f"--cluster.peer=127.0.0.1:{port}" for port in self.peers]
            cluster += ["--cluster.peer-timeout=2s", "--cluster.gossip-interval=50ms"]
            cluster += ["--cluster.pushpull-interval=1s", "--cluster.settle-timeout=3s"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.path={self.workdir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *cluster,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, (self.workdir / "log").read_text()
            try:
                return "OK" in fetch(self.url + "/-/ready")
            except OSError:
                return False

        wait_for(ready, timeout=30)
        return self

    def settled(self) -> bool:
        return "gossip settled" in (self.workdir / "log").read_text()

    def peers_seen(self) -> int:
        status = json.loads(fetch(self.url + "/api/v2/status"))
        return len((status.get("cluster") or {}).get("peers") or [])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def alertmanagers(tmp_path: Path, webhook: WebhookReceiver) -> Iterator[Callable[..., list]]:
    binary = require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname", "target"],
                    "group_wait": f"{GROUP_WAIT:g}s",
                    "group_interval": f"{GROUP_INTERVAL:g}s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "hook",
                        "webhook_configs": [{"url": webhook.url("http"), "send_resolved": True}],
                    }
                ],
            }
        )
    )
    started: list[Alertmanager] = []

    def start(count: int = 2) -> list[Alertmanager]:
        instances = [
            Alertmanager(binary, tmp_path / f"am{i}", config, [] if count > 1 else None)
            for i in range(count)
        ]
        for instance in instances:
            if count > 1:
                instance.peers = [o.cluster for o in instances if o is not instance]
        for instance in instances:
            started.append(instance.start())
        if count > 1:
            wait_for(lambda: all(i.peers_seen() == count for i in instances), timeout=30)
            # Notifications wait for the gossip to settle: measure latencies after it.
            wait_for(lambda: all(i.settled() for i in instances), timeout=30)
        return instances

    yield start
    for instance in started:
        instance.stop()


def notifications(webhook: WebhookReceiver, status: str) -> list[dict[str, Any]]:
    return [r for r in webhook.requests if r.get("status") == status]


def daemon_config(tmp_path: Path, name: str, urls: list[str], **manager: Any):
    return make_config(
        targets=[{"name": "db", "path": str(tmp_path / "db"), "max_age": "1h"}],
        state_dir=str(tmp_path / f"state-{name}"),
        alertmanager={"urls": urls, "resend_interval": "1s", **manager},
    )


def by_alert(webhook: WebhookReceiver, status: str, alertname: str) -> list[dict[str, Any]]:
    return [
        r for r in notifications(webhook, status) if r["groupLabels"].get("alertname") == alertname
    ]


def test_two_daemons_two_alertmanagers_tell_a_human_once(
    tmp_path: Path, start_daemon, alertmanagers, webhook: WebhookReceiver
) -> None:
    backup = write_backup(tmp_path / "db" / "backup-1.db", 4096)
    cluster = alertmanagers(2)
    urls = [am.url for am in cluster]
    labels = {"external_labels": {"instance": "nas", "env": "test"}}
    daemons = [start_daemon(daemon_config(tmp_path, n, urls, **labels)) for n in "ab"]
    # A file event: the backup is deleted. Both daemons fire within milliseconds and post
    # to both instances; the human hears of it once, within group_wait + 2 s.
    deleted = time.time()
    backup.unlink()
    wait_for(lambda: by_alert(webhook, "firing", "BackupTooOld"), timeout=30)
    assert webhook.times[0] - deleted < GROUP_WAIT + 2
    # Proving "only once": wait past the peer timeout and a group interval for a
    # duplicate that must not come.
    time.sleep(2 + GROUP_INTERVAL)
    (firing,) = by_alert(webhook, "firing", "BackupTooOld")
    (alert,) = firing["alerts"]
    assert alert["labels"] == {
        "alertname": "BackupTooOld",
        "target": "db",
        "check": "age",
        "severity": "critical",
        "instance": "nas",
        "env": "test",
    }
    assert alert["annotations"]["summary"] == "Backup too old: db"
    assert alert["annotations"]["description"] == "no backup found"
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbook.md#backuptooold")
    assert alert["generatorURL"].endswith("/#target-db")
    assert len(by_alert(webhook, "firing", "BackupTooSmall")) == 1  # its own group
    for daemon in daemons:
        samples = scrape(daemon.url)
        for am in cluster:
            posted = value(
                samples, "backup_monitor_alertmanager_posts_total", url=am.url, result="ok"
            )
            assert posted >= 1
    # A fresh backup resolves both, and each resolution is told once too.
    write_backup(tmp_path / "db" / "backup-2.db", 4096)
    wait_for(lambda: by_alert(webhook, "resolved", "BackupTooOld"), timeout=30)
    time.sleep(2 + GROUP_INTERVAL)  # as above: a second "resolved" must not come
    assert len(by_alert(webhook, "resolved", "BackupTooOld")) == 1
    assert len(by_alert(webhook, "firing", "BackupTooOld")) == 1


def test_an_alertmanager_down_then_back_gets_the_alert(
    tmp_path: Path, start_daemon, alertmanagers, webhook: WebhookReceiver
) -> None:
    write_backup(tmp_path / "db" / "backup-1.db", 4096, time.time() - 7200)
    (am,) = alertmanagers(1)
    am.stop()
    daemon = start_daemon(daemon_config(tmp_path, "a", [am.url]))
    wait_for(
        lambda: value(
            scrape(daemon.url),
            "backup_monitor_alertmanager_posts_total",
            url=am.url,
            result="error",
        )
    )
    assert value(scrape(daemon.url), "backup_monitor_alertmanager_pending", url=am.url) == 1
    am.start()  # back on the same port: the next retry delivers
    wait_for(lambda: notifications(webhook, "firing"), timeout=30)
    wait_for(
        lambda: value(scrape(daemon.url), "backup_monitor_alertmanager_pending", url=am.url) == 0
    )


def test_a_dead_daemons_alert_expires(
    tmp_path: Path, start_daemon, alertmanagers, webhook: WebhookReceiver
) -> None:
    write_backup(tmp_path / "db" / "backup-1.db", 4096, time.time() - 7200)
    (am,) = alertmanagers(1)
    daemon = start_daemon(daemon_config(tmp_path, "a", [am.url]))
    wait_for(lambda: notifications(webhook, "firing"), timeout=30)
    stopped = time.time()
    daemon.alerting.alertmanager.stop()  # the daemon dies: nothing more is posted
    daemon.stop()
    # endsAt was at most 4 resend intervals (4 s) ahead: Alertmanager resolves it then.
    wait_for(lambda: notifications(webhook, "resolved"), timeout=30)
    assert webhook.times[-1] - stopped >= 2
    assert webhook.times[-1] - stopped < 4 + GROUP_INTERVAL + 3
