"""Backups still being written, aliases, filesystem types and polling: the pure parts,
with an injected clock and no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.checks.table import check_shrink, check_size, check_verify, check_writing
from exporter.config import TargetConfig
from exporter.counters import DaemonStats
from exporter.index import TargetIndex, Verification
from exporter.sources.matcher import Matcher
from exporter.sources.mounts import choose_mode, mount_of, needs_polling, parse_mountinfo
from exporter.sources.polling import SPREAD, poll_once
from exporter.sources.watch import TargetEventHandler
from exporter.target import Target
from tests.conftest import write_backup


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def target(clock: Clock, **options: object) -> Target:
    config = TargetConfig.model_validate({"name": "t", "path": "/backups", **options})
    made = Target(config, clock)
    made.index.apply_scan(
        {f"backup-{i}.db": (50_000, clock.now - (5 - i) * 86400) for i in range(5)},
        set(),
        clock.now,
        0.0,
    )
    return made


def test_a_backup_written_in_place_is_judged_once_settled() -> None:
    clock = Clock()
    t = target(clock, settle="30s")
    index = t.index
    for size in (0, 4096, 20_000, 49_000):  # created, then growing: one event each
        index.upsert("backup-5.db", size, clock.now, clock.now)
        snap = index.snapshot()
        assert [w.name for w in snap.unsettled(clock.now)] == ["backup-5.db"]
        assert snap.settled_newest(clock.now).name == "backup-4.db"
        size_result = check_size(snap, t, clock.now)
        assert size_result.ok
        assert "backup-4.db is 48.8 KiB" in size_result.reason
        assert "backup-5.db is still being written" in size_result.reason
        assert size_result.next_change_at == clock.now + 30
        assert check_shrink(snap, t, clock.now).ok
        clock.now += 5
    clock.now += 30  # quiet for settle: now it is judged
    snap = index.snapshot()
    assert snap.unsettled(clock.now) == []
    assert snap.settled_newest(clock.now).name == "backup-5.db"
    assert check_size(snap, t, clock.now).ok
    assert check_shrink(snap, t, clock.now).ok  # 49,000 of 50,000


def test_a_truncated_backup_fails_once_it_settles() -> None:
    clock = Clock()
    t = target(clock, settle="30s")
    t.index.upsert("backup-5.db", 500, clock.now, clock.now)
    assert check_size(t.index.snapshot(), t, clock.now).ok
    clock.now += 31
    snap = t.index.snapshot()
    assert not check_size(snap, t, clock.now).ok
    assert "backup-5.db is 500 B" in check_size(snap, t, clock.now).reason
    assert not check_shrink(snap, t, clock.now).ok


def test_a_file_renamed_into_place_is_complete_at_once() -> None:
    clock = Clock()
    t = target(clock, settle="30s")
    t.index.upsert("backup-5.db", 50_000, clock.now, clock.now - 120)  # written, then moved
    snap = t.index.snapshot()
    assert snap.unsettled(clock.now) == []
    assert snap.settled_newest(clock.now).name == "backup-5.db"


def test_the_first_backup_being_written_is_not_missing() -> None:
    clock = Clock()
    config = TargetConfig.model_validate({"name": "t", "path": "/backups", "settle": "30s"})
    t = Target(config, clock)
    t.index.apply_scan({}, set(), clock.now, 0.0)
    t.index.upsert("backup-0.db", 10, clock.now, clock.now)
    result = check_size(t.index.snapshot(), t, clock.now)
    assert result.ok
    assert result.reason == "first backup backup-0.db is still being written"


def test_a_backup_that_never_settles_fails_after_max_write_time() -> None:
    clock = Clock()
    t = target(clock, settle="30s", max_write_time="1h")
    for step in range(181):  # grows every 20 s (never quiet for settle) for an hour
        t.index.upsert("backup-5.db", step, clock.now, clock.now)
        assert check_writing(t.index.snapshot(), t, clock.now).ok
        clock.now += 20
    t.index.upsert("backup-5.db", 1, clock.now, clock.now)
    result = check_writing(t.index.snapshot(), t, clock.now)
    assert not result.ok
    assert result.reason == "backup backup-5.db still being written after 1h 0m (max 1h)"


def test_verification_names_what_it_refers_to() -> None:
    clock = Clock()
    t = target(clock, settle="0s", verify="sqlite")
    newest = t.index.snapshot().newest
    t.index.set_verification(
        Verification(
            newest.name, False, "integrity_check: bad", "sqlite", 0, 0, newest.size, newest.mtime
        )
    )
    assert not t.index.snapshot().verification_pending(clock.now)
    t.index.upsert("backup-5.db", 50_000, clock.now, clock.now)
    snap = t.index.snapshot()
    assert snap.verification_pending(clock.now)
    result = check_verify(snap, t, clock.now)
    assert not result.ok  # the last verdict stands until the new backup is verified
    assert result.reason == "backup-4.db: integrity_check: bad (backup-5.db not verified yet)"


def test_hard_links_count_once_under_the_first_name() -> None:
    clock = Clock()
    index = TargetIndex("t", "/t", clock=clock)
    index.apply_scan({}, set(), clock.now, 0.0)
    index.upsert("backup-b.db", 100, 1.0, 1.0, ino=42)
    index.upsert("backup-c.db", 100, 1.0, 1.0, ino=42)  # a later name: an alias
    assert index.files() == {"backup-b.db": (100, 1.0)}
    index.upsert("backup-a.db", 100, 1.0, 1.0, ino=42)  # an earlier name takes over
    assert index.files() == {"backup-a.db": (100, 1.0)}
    assert index.snapshot().count == 1
    assert index.has_links("backup-a.db")


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /mnt/nas rw,relatime shared:9 - nfs4 nas:/export rw,vers=4.2
41 40 0:51 / /mnt/nas/fuse\\040dir rw - fuse.sshfs user@host:/x rw
42 22 0:52 / /tmp rw - tmpfs tmpfs rw
"""


def test_filesystem_type_decides_the_watch_mode(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.point for m in mounts] == ["/", "/mnt/nas", "/mnt/nas/fuse dir", "/tmp"]
    assert mount_of("/var/backups", str(info)).fstype == "ext4"
    assert mount_of("/mnt/nas/db", str(info)).fstype == "nfs4"
    assert mount_of("/mnt/nas/fuse dir/x", str(info)).fstype == "fuse.sshfs"
    assert mount_of("/mnt/nasty", str(info)).fstype == "ext4"  # a prefix, not a parent
    for fstype, polled in (("nfs4", True), ("fuse.sshfs", True), ("cifs", True)):
        assert needs_polling(fstype) is polled
    for fstype in ("ext4", "xfs", "btrfs", "tmpfs", "zfs"):
        assert not needs_polling(fstype)
    assert choose_mode("inotify", "/mnt/nas")[0] == "inotify"  # asked for: obeyed
    assert choose_mode("polling", "/")[0] == "polling"


def test_a_poll_round_stats_only_what_can_have_changed(tmp_path: Path) -> None:
    for i in range(400):
        write_backup(tmp_path / f"backup-{i:03d}.db", 100, 1_000_000 + i)
    t = Target(TargetConfig.model_validate({"name": "t", "path": str(tmp_path)}))
    t.index.apply_scan(
        {p.name: (100, p.stat().st_mtime) for p in tmp_path.iterdir()}, set(), 2e6, 0.0
    )
    handler = TargetEventHandler(
        t.index,
        str(tmp_path),
        Matcher(["*"], []),
        t.stamp,
        False,
        DaemonStats(),
        lambda *_a, **_k: None,
    )
    refreshed: list[str] = []
    handler.refresh = refreshed.append  # type: ignore[method-assign]
    rounds = [0] * SPREAD
    for turn in range(SPREAD):
        refreshed.clear()
        poll_once(handler, turn)
        rounds[turn] = len(refreshed)
    # Each round: the two newest and one slice in SPREAD; every file within SPREAD rounds.
    assert max(rounds) < 400 / SPREAD * 2
    assert sum(rounds) == pytest.approx(400 + 2 * SPREAD, abs=2 * SPREAD)
    write_backup(tmp_path / "backup-new.db", 5)
    refreshed.clear()
    poll_once(handler, 0)
    assert str(tmp_path / "backup-new.db") in refreshed
