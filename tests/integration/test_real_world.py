"""Backups as they are really made: written in place, on FUSE mounts, moved, mounted over,
aliased by links; each on real files, real mounts and a real daemon."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from exporter.config import DEFAULT_EXCLUDES
from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher
from tests.conftest import make_config, require_tool, scrape, value, wait_for, write_backup
from tests.helpers import make_db
from tests.peers import WebhookReceiver


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (CI runs as root)")


def metric(daemon, name: str, target: str, **labels: str) -> float | None:
    return value(scrape(daemon.url), name, target=target, **labels)


def test_in_place_sqlite_backup_raises_no_alarm(tmp_path: Path, start_daemon, webhook) -> None:
    """`sqlite3 .backup` writes under the final name, page by page: while it grows the
    target shows a backup in progress, sizes are judged on the previous backup, and no
    notification goes out at any point."""
    live = make_db(tmp_path / "quota.db", 3000)
    backups = tmp_path / "backups"
    backups.mkdir()
    for day in (3, 2, 1):
        old = backups / f"backup-2026-01-0{day}-02-00-00.db"
        shutil.copy(live, old)
        os.utime(old, (time.time() - day * 86400 + 7200,) * 2)  # the newest 22 h old
    config = make_config(
        targets=[
            {
                "name": "quota-proxy",
                "path": str(backups),
                "patterns": ["backup-*.db*"],
                "settle": "1s",
                "verify": "sqlite",
            }
        ],
        state_dir=str(tmp_path / "state"),
        notify={"urls": [webhook.url()]},
    )
    daemon = start_daemon(config)
    wait_for(lambda: metric(daemon, "backup_verify_ok", "quota-proxy") == 1)
    observed: list[float | None] = []

    def progress(status: int, remaining: int, total: int) -> None:
        if not observed:  # part-way through: the file exists, short and growing
            wait_for(lambda: metric(daemon, "backup_in_progress", "quota-proxy") == 1)
            observed.append(metric(daemon, "backup_newest_size_bytes", "quota-proxy"))
            observed.append(metric(daemon, "backup_check_ok", "quota-proxy", check="size"))
        time.sleep(0.02)  # the writer's pace, not a wait for the daemon

    target = backups / "backup-2026-01-04-02-00-00.db"
    with closing(sqlite3.connect(live)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy, pages=8, progress=progress)
    assert observed == [os.path.getsize(live), 1]  # the previous backup's size, passing
    wait_for(lambda: metric(daemon, "backup_in_progress", "quota-proxy") == 0)
    wait_for(lambda: metric(daemon, "backup_verify_pending", "quota-proxy") == 0)
    s = scrape(daemon.url)
    assert value(s, "backup_count", target="quota-proxy") == 4
    assert value(s, "backup_newest_size_bytes", target="quota-proxy") == target.stat().st_size
    assert value(s, "backup_verify_ok", target="quota-proxy") == 1
    evaluator = daemon.alerting.evaluator
    before = evaluator.rounds
    evaluator.wake()
    wait_for(lambda: evaluator.rounds > before)
    assert webhook.requests == []  # not a single false alarm


def test_sqlite_companions_are_not_backups(tmp_path: Path) -> None:
    """With the documented pattern `backup-*.db*`, a journal, WAL or shm file is not one
    more backup (the guide's script counts 3 here too)."""
    for name in ("backup-1.db", "backup-2.db", "backup-3.db.gz"):
        write_backup(tmp_path / name, 2000)
    for suffix in ("-journal", "-wal", "-shm"):
        write_backup(tmp_path / f"backup-3.db{suffix}", 0)
    files = scan_target(str(tmp_path), Matcher(["backup-*.db*"], DEFAULT_EXCLUDES), False)
    assert sorted(files) == ["backup-1.db", "backup-2.db", "backup-3.db.gz"]


def test_a_backup_that_never_settles_fails_the_writing_check(
    tmp_path: Path, start_daemon, webhook
) -> None:
    write_backup(tmp_path / "t" / "backup-1.db", 4096, time.time() - 3600)
    config = make_config(
        targets=[
            {"name": "t", "path": str(tmp_path / "t"), "settle": "5s", "max_write_time": "1s"}
        ],
        state_dir=str(tmp_path / "state"),
        notify={"urls": [webhook.url()]},
    )
    daemon = start_daemon(config)
    stuck = tmp_path / "t" / "backup-2.db"
    with open(stuck, "wb") as handle:
        handle.write(b"x" * 100)
        handle.flush()
        # Keeps changing: the writer appends until the daemon calls it stuck.
        deadline = time.monotonic() + 20
        while not webhook.requests and time.monotonic() < deadline:
            handle.write(b"y" * 100)
            handle.flush()
            time.sleep(0.1)
    assert [r["title"] for r in webhook.requests] == ["[FIRING] backup still being written: t"]
    assert "backup-2.db still being written after" in webhook.requests[0]["message"]
    assert metric(daemon, "backup_check_ok", "t", check="writing") == 0


def test_fuse_mount_written_from_beneath_is_polled(tmp_path: Path, start_daemon) -> None:
    """inotify never sees a write made beneath a FUSE mount (as on NFS, by another
    client): `auto` polls such a target and sees it within two poll intervals."""
    needs_root()
    bindfs = require_tool("bindfs", "bindfs")
    under, mnt = tmp_path / "under", tmp_path / "mnt"
    under.mkdir()
    mnt.mkdir()
    write_backup(under / "backup-1.db", 2000, time.time() - 60)
    subprocess.run([bindfs, str(under), str(mnt)], check=True, timeout=30)
    try:
        config = make_config(targets=[{"name": "nas", "path": str(mnt)}], poll_interval="0.5s")
        daemon = start_daemon(config)
        assert metric(daemon, "backup_monitor_watch_mode", "nas", mode="polling") == 1
        write_backup(under / "backup-2.db", 3000)
        started = time.monotonic()
        wait_for(lambda: metric(daemon, "backup_count", "nas") == 2, timeout=5)
        assert time.monotonic() - started <= 2 * 0.5 + 0.5
        assert daemon.targets[0].index.snapshot().scans == 1  # seen by polling, not a rescan
        with open(under / "backup-2.db", "ab") as handle:  # grows in place, from beneath
            handle.write(b"z" * 1000)
        wait_for(lambda: metric(daemon, "backup_total_size_bytes", "nas") == 6000, timeout=5)
        (under / "backup-1.db").unlink()
        wait_for(lambda: metric(daemon, "backup_count", "nas") == 1, timeout=5)
    finally:
        subprocess.run(["umount", str(mnt)], check=False, timeout=30)


def test_renamed_away_and_recreated_target_is_seen_at_once(tmp_path: Path, start_daemon) -> None:
    root = tmp_path / "backups"
    write_backup(root / "backup-1.db", 2000)
    write_backup(root / "backup-2.db", 2000)
    config = make_config(targets=[{"name": "t", "path": str(root)}], retry_interval="0.5s")
    daemon = start_daemon(config)
    assert metric(daemon, "backup_count", "t") == 2
    root.rename(tmp_path / "moved-away")
    wait_for(lambda: metric(daemon, "backup_target_up", "t") == 0, timeout=3)
    root.mkdir()
    write_backup(root / "backup-9.db", 5000)
    wait_for(lambda: metric(daemon, "backup_target_up", "t") == 1, timeout=3)
    assert metric(daemon, "backup_count", "t") == 1
    # Renamed away and re-created between two ticks: the path is back, the directory is not.
    root.rename(tmp_path / "moved-again")
    root.mkdir()
    wait_for(lambda: metric(daemon, "backup_count", "t") == 0, timeout=3)
    write_backup(root / "backup-10.db", 5000)  # the new directory is watched
    wait_for(lambda: metric(daemon, "backup_count", "t") == 1, timeout=3)


def test_mounted_over_and_unmounted_target(tmp_path: Path, start_daemon) -> None:
    needs_root()
    root, other = tmp_path / "backups", tmp_path / "nas-export"
    write_backup(root / "backup-1.db", 2000)
    for i in range(3):
        write_backup(other / f"backup-{i}.db", 7000)
    config = make_config(targets=[{"name": "t", "path": str(root)}], retry_interval="0.5s")
    daemon = start_daemon(config)
    assert metric(daemon, "backup_count", "t") == 1
    subprocess.run(["mount", "--bind", str(other), str(root)], check=True, timeout=30)
    try:
        wait_for(lambda: metric(daemon, "backup_count", "t") == 3, timeout=3)
        write_backup(root / "backup-new.db", 7000)  # the mounted directory is the one watched
        wait_for(lambda: metric(daemon, "backup_count", "t") == 4, timeout=3)
    finally:
        subprocess.run(["umount", str(root)], check=True, timeout=30)
    wait_for(lambda: metric(daemon, "backup_count", "t") == 1, timeout=3)
    assert metric(daemon, "backup_total_size_bytes", "t") == 2000


def test_links_to_counted_backups_are_not_backups(tmp_path: Path, start_daemon) -> None:
    root = tmp_path / "backups"
    write_backup(root / "backup-2026-01-01.db", 4000, time.time() - 86400)
    config = make_config(targets=[{"name": "t", "path": str(root)}])
    daemon = start_daemon(config)
    write_backup(root / "backup-2026-01-02.db", 5000)
    wait_for(lambda: metric(daemon, "backup_count", "t") == 2)
    latest = root / "backup-latest.db"
    latest.symlink_to("backup-2026-01-02.db")
    os.link(root / "backup-2026-01-01.db", root / "backup-copy.db")
    write_backup(root / "backup-2026-01-03.db", 6000)  # an event after the links'
    wait_for(lambda: metric(daemon, "backup_count", "t") == 3)
    s = scrape(daemon.url)
    assert value(s, "backup_total_size_bytes", target="t") == 15000
    assert daemon.targets[0].index.snapshot().newest.name == "backup-2026-01-03.db"
    index = daemon.targets[0].index
    wait_for(lambda: index.snapshot().scans >= 2)  # the new hard link asked for one
    # A further rescan agrees with what the events and that scan made of it.
    before = index.snapshot()
    daemon.supervisor.request_rescan("t")
    wait_for(lambda: index.snapshot().scans == before.scans + 1)
    assert index.snapshot().corrections == before.corrections
    # The first name gone, the hard link's other name counts.
    (root / "backup-2026-01-01.db").unlink()
    wait_for(lambda: "backup-copy.db" in daemon.targets[0].index.files())
    assert metric(daemon, "backup_count", "t") == 3


def test_verification_pending_then_failed(tmp_path: Path, start_daemon) -> None:
    root = tmp_path / "db"
    root.mkdir()
    good = make_db(root / "backup-1.db")
    os.utime(good, (time.time() - 3600,) * 2)
    config = make_config(
        targets=[{"name": "db", "path": str(root), "verify": "sqlite", "settle": "1s"}]
    )
    daemon = start_daemon(config)
    wait_for(lambda: metric(daemon, "backup_verify_ok", "db") == 1)
    assert metric(daemon, "backup_verify_pending", "db") == 0
    corrupt = root / "backup-2.db"
    data = bytearray(good.read_bytes())
    data[len(data) // 2 :] = b"\xff" * (len(data) - len(data) // 2)
    corrupt.write_bytes(bytes(data))
    # Known: the new backup is not verified yet, and the last verdict is the old one's.
    wait_for(lambda: metric(daemon, "backup_verify_pending", "db") == 1)
    assert metric(daemon, "backup_verify_ok", "db") == 1
    wait_for(lambda: metric(daemon, "backup_verify_ok", "db") == 0)
    assert metric(daemon, "backup_verify_pending", "db") == 0
    # Down: nothing is known of a file that cannot be seen.
    root.rename(tmp_path / "gone")
    wait_for(lambda: metric(daemon, "backup_target_up", "db") == 0)
    s = scrape(daemon.url)
    assert value(s, "backup_verify_ok", target="db") is None
    assert value(s, "backup_verify_pending", target="db") == 0
