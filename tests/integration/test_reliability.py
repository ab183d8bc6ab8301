"""Faults it must survive, each on real files and a real process."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest

from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher
from exporter.verify.content import VerifyOptions, verify_file
from tests.conftest import make_config, require_tool, scrape, value, wait_for, write_backup
from tests.helpers import base_config, make_db, titles, write_config
from tests.peers import WebhookReceiver
from tests.process import DaemonProcess


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def test_sighup_reloads_targets_and_keeps_alert_state(tmp_path: Path, webhook) -> None:
    for name in ("a", "b", "c"):
        write_backup(tmp_path / name / "backup-1.db", 10 if name == "a" else 4096)
    config = tmp_path / "config.yml"
    first = [{"path": str(tmp_path / "a")}, {"path": str(tmp_path / "b")}]
    write_config(config, base_config(tmp_path, first, [webhook.url()]))
    daemon = DaemonProcess(config, tmp_path / "log").start()
    try:
        wait_for(lambda: titles(webhook) == ["[FIRING] backup too small: a"])
        second = [{"path": str(tmp_path / "a")}, {"path": str(tmp_path / "c"), "min_size": "1MiB"}]
        write_config(config, base_config(tmp_path, second, [webhook.url()]))
        daemon.send(signal.SIGHUP)
        wait_for(lambda: value(scrape(daemon.url), "backup_count", target="c") == 1)
        s = scrape(daemon.url)
        assert value(s, "backup_count", target="b") is None
        assert value(s, "backup_alert_firing", target="a", check="size") == 1
        wait_for(lambda: "[FIRING] backup too small: c" in titles(webhook))
        assert titles(webhook).count("[FIRING] backup too small: a") == 1  # not sent again
        # An invalid configuration is rejected; the running one goes on.
        config.write_text("targets: [{path: /x, max_age: soon}]\n")
        daemon.send(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in daemon.logs())
        assert "targets[0].max_age: invalid duration 'soon'" in daemon.logs()
        assert value(scrape(daemon.url), "backup_count", target="c") == 1
    finally:
        assert daemon.stop() == 0


def test_sigterm_with_queued_notifications_delivers_after_restart(tmp_path: Path, webhook) -> None:
    webhook.mode = "fail"
    write_backup(tmp_path / "a" / "backup-1.db", 10)
    config = write_config(
        tmp_path / "c.yml", base_config(tmp_path, [{"path": str(tmp_path / "a")}], [webhook.url()])
    )
    daemon = DaemonProcess(config, tmp_path / "log").start()
    wait_for(lambda: value(scrape(daemon.url), "backup_monitor_notifications_pending") == 1)
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 2.0  # stops promptly, even with delivery stuck
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert [item["notification"]["title"] for item in saved["outbox"]] == [
        "[FIRING] backup too small: a"
    ]
    webhook.mode = "ok"
    again = DaemonProcess(config, tmp_path / "log").start()
    try:
        wait_for(lambda: titles(webhook) == ["[FIRING] backup too small: a"])
        wait_for(lambda: value(scrape(again.url), "backup_monitor_notifications_pending") == 0)
    finally:
        again.stop()


def limit_file_size() -> None:
    # A "full disk" for this process only: writes past 64 KiB fail with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_full_state_disk_keeps_serving_and_alerting(tmp_path: Path, webhook) -> None:
    targets = [{"path": str(tmp_path / "ok")}]
    write_backup(tmp_path / "ok" / "backup-1.db", 4096)
    config = write_config(tmp_path / "c.yml", base_config(tmp_path, targets, [webhook.url()]))
    first = DaemonProcess(config, tmp_path / "log").start()
    first.stop()
    state = tmp_path / "state" / "state.json"
    before = state.read_bytes()
    assert json.loads(before)["version"] == 1
    # Now many failing targets: the state grows past what the "disk" holds.
    many = [{"path": str(tmp_path / f"t{i}"), "name": f"t{i:03d}-" + "x" * 60} for i in range(300)]
    write_config(config, base_config(tmp_path, targets + many, [webhook.url()]))
    daemon = DaemonProcess(config, tmp_path / "log2", preexec=limit_file_size).start()
    try:
        wait_for(lambda: value(scrape(daemon.url), "backup_monitor_state_write_errors_total") >= 2)
        wait_for(lambda: len(webhook.requests) >= 10)  # alerting goes on
        assert state.read_bytes() == before  # never truncated: atomic replace
        assert daemon.logs().count("cannot write state file") == 1  # logged once
    finally:
        daemon.stop()
    # Checked once stopped: a save in flight has a temporary file for a moment.
    assert not list((tmp_path / "state").glob(".state-*"))  # no partial file left


@pytest.mark.parametrize(
    "content",
    # the last: the right version, a wrong shape
    ["{not json", '{"version": 99, "alerts": {}}', "[1, 2]", '{"version": 1, "alerts": []}'],
)
def test_corrupt_or_foreign_state_file_is_moved_aside(tmp_path: Path, content: str) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text(content)
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    config = write_config(
        tmp_path / "c.yml", base_config(tmp_path, [{"path": str(tmp_path / "a")}])
    )
    daemon = DaemonProcess(config, tmp_path / "log").start()
    try:
        assert "moved aside" in daemon.logs()
        aside = list((tmp_path / "state").glob("state.json.corrupt-*"))
        assert [p.read_text() for p in aside] == [content]
        assert value(scrape(daemon.url), "backup_count", target="a") == 1
    finally:
        daemon.stop()


def test_permissions_revoked_and_restored(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the daemon as root without CAP_DAC_OVERRIDE")
    setpriv = require_tool("setpriv", "util-linux")
    # Root without the capabilities that bypass file permissions.
    drop = (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--")
    tmp_path.chmod(0o755)
    target = tmp_path / "backups"
    write_backup(target / "backup-1.db", 4096)
    target.chmod(0o755)
    config = write_config(tmp_path / "c.yml", base_config(tmp_path, [{"path": str(target)}]))
    daemon = DaemonProcess(config, tmp_path / "log", prefix=drop).start()
    try:
        assert value(scrape(daemon.url), "backup_target_up", target="backups") == 1
        target.chmod(0)
        (target / "backup-2.db").write_bytes(b"x" * 5000)  # an event wakes the rescan up
        daemon_up = lambda: value(scrape(daemon.url), "backup_target_up", target="backups")  # noqa: E731
        wait_for(lambda: daemon_up() == 0)
        assert "permission denied" in daemon.logs()
        target.chmod(0o755)
        wait_for(lambda: daemon_up() == 1)
        assert value(scrape(daemon.url), "backup_count", target="backups") == 2
        write_backup(target / "backup-3.db", 6000)  # watched again
        wait_for(
            lambda: value(scrape(daemon.url), "backup_newest_size_bytes", target="backups") == 6000
        )
    finally:
        target.chmod(0o755)
        daemon.stop()


def test_directory_replaced_by_a_symlink(tmp_path: Path, start_daemon) -> None:
    path = tmp_path / "backups"
    write_backup(path / "backup-1.db", 2000)
    daemon = start_daemon(make_config(targets=[{"path": str(path)}], retry_interval="0.2s"))
    elsewhere = tmp_path / "elsewhere"
    write_backup(elsewhere / "backup-a.db", 3000)
    write_backup(elsewhere / "backup-b.db", 3000)
    shutil.rmtree(path)
    path.symlink_to(elsewhere)
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="backups") == 2)
    write_backup(elsewhere / "backup-c.db", 7000)  # the new real directory is watched
    wait_for(
        lambda: value(scrape(daemon.url), "backup_newest_size_bytes", target="backups") == 7000
    )


def test_future_dated_files_and_clock_jumps(tmp_path: Path, start_daemon) -> None:
    now = time.time()
    write_backup(tmp_path / "backup-1.db", 2000, now - 3600)
    write_backup(tmp_path / "backup-2.db", 2000, now + 10 * 86400)  # dated next week
    offset = [0.0]
    daemon = start_daemon(
        make_config(targets=[{"name": "t", "path": str(tmp_path)}]),
        clock=lambda: time.time() + offset[0],
    )
    s = scrape(daemon.url)
    assert value(s, "backup_future_files", target="t") == 1
    assert value(s, "backup_age_seconds", target="t") == 0  # never negative
    offset[0] = -30 * 86400  # the clock jumps a month back
    s = scrape(daemon.url)
    assert value(s, "backup_age_seconds", target="t") == 0
    assert value(s, "backup_oldest_age_seconds", target="t") == 0
    assert value(s, "backup_future_files", target="t") == 2
    offset[0] = 0.0
    (tmp_path / "backup-2.db").unlink()
    wait_for(lambda: value(scrape(daemon.url), "backup_future_files", target="t") == 0)


def test_odd_names_and_special_files_live(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(
        make_config(targets=[{"name": "t", "path": str(tmp_path), "recursive": True}])
    )
    raw = os.fsencode(str(tmp_path)) + b"/bad-\xff\xfe.db"
    with open(raw, "wb") as handle:
        handle.write(b"12345")
    (tmp_path / "new\nline.db").write_bytes(b"abc")
    (tmp_path / ("n" * 255)).write_bytes(b"abcd")
    os.mkfifo(tmp_path / "pipe.db")
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(40)])
    deep.mkdir(parents=True)
    (deep / "deep.db").write_bytes(b"123456")
    (tmp_path / "loop").symlink_to(tmp_path)
    expected = scan_target(str(tmp_path), Matcher(["*"], [".*"]), True)
    assert len(expected) == 4
    wait_for(lambda: daemon.targets[0].index.files() == expected)
    assert value(scrape(daemon.url), "backup_count", target="t") == 4


def test_daemon_never_writes_to_a_target(tmp_path: Path, start_daemon) -> None:
    target = tmp_path / "backups"
    target.mkdir()
    for day in range(3):
        path = make_db(target / f"backup-{day}.db")
        os.utime(path, (time.time() - 86400 * (3 - day),) * 2)

    def listing() -> dict[str, tuple[bytes, float, int]]:
        return {
            str(p.relative_to(target)): (
                p.read_bytes(),
                p.stat().st_mtime,
                stat.S_IMODE(p.stat().st_mode),
            )
            for p in sorted(target.rglob("*"))
        }

    before = listing()
    daemon = start_daemon(
        make_config(targets=[{"name": "t", "path": str(target), "verify": "sqlite", "settle": 0}])
    )
    wait_for(lambda: value(scrape(daemon.url), "backup_verify_ok", target="t") == 1)
    daemon.supervisor.request_rescan_all()
    wait_for(lambda: daemon.targets[0].index.snapshot().scans >= 2)
    daemon.stop()
    for path in target.iterdir():
        assert verify_file(str(path), VerifyOptions(kind="sqlite")).ok
    assert listing() == before
