"""The real daemon over real directories, scraped over real HTTP."""

from __future__ import annotations

import gc
import math
import os
import shutil
import time
import weakref
from pathlib import Path

import pytest

from exporter.cli import settle_heap
from tests.conftest import make_config, scrape, value, wait_for, write_backup


@pytest.fixture(params=["inotify", "polling"])
def watch_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def test_exact_values_on_first_scrape(tmp_path: Path, start_daemon) -> None:
    now = time.time()
    db = tmp_path / "db"
    write_backup(db / "backup-1.db", 5000, now - 7200)
    write_backup(db / "backup-2.db", 6000, now - 3600)
    write_backup(db / "backup-3.db", 500, now - 60)
    write_backup(db / "backup-4.db.tmp", 9999, now)  # in progress: excluded by default
    write_backup(db / ".hidden", 9999, now)
    empty = tmp_path / "empty"
    empty.mkdir()
    config = make_config(
        targets=[
            {"path": str(db), "min_count": 5, "labels": {"env": "prod"}},
            {"name": "nothing", "path": str(empty), "max_age": "2h", "min_size": "1KB"},
        ]
    )
    daemon = start_daemon(config)
    s = scrape(daemon.url)
    db_labels = {"target": "db", "env": "prod"}
    assert value(s, "backup_count", **db_labels) == 3
    assert value(s, "backup_total_size_bytes", **db_labels) == 11500
    assert value(s, "backup_newest_size_bytes", **db_labels) == 500
    assert value(s, "backup_newest_timestamp_seconds", **db_labels) == pytest.approx(now - 60)
    assert value(s, "backup_oldest_timestamp_seconds", **db_labels) == pytest.approx(now - 7200)
    assert 59 <= value(s, "backup_age_seconds", **db_labels) < 120
    assert value(s, "backup_max_age_seconds", **db_labels) == 86400
    assert value(s, "backup_min_size_bytes", **db_labels) == 1024
    assert value(s, "backup_min_backups", **db_labels) == 5
    assert value(s, "backup_check_ok", check="age", **db_labels) == 1
    assert value(s, "backup_check_ok", check="size", **db_labels) == 0
    assert value(s, "backup_check_ok", check="count", **db_labels) == 0
    assert value(s, "backup_target_up", **db_labels) == 1
    # An empty target has every series; no backup fails the age check, age is +Inf.
    assert value(s, "backup_count", target="nothing") == 0
    assert math.isinf(value(s, "backup_age_seconds", target="nothing"))
    assert value(s, "backup_check_ok", check="age", target="nothing") == 0
    assert value(s, "backup_max_age_seconds", target="nothing") == 7200
    assert value(s, "backup_min_size_bytes", target="nothing") == 1000
    assert value(s, "backup_min_backups", target="nothing") is None
    assert value(s, "backup_monitor_scans_total", target="db", env="prod") == 1
    assert value(s, "backup_monitor_watch_mode", target="db", env="prod", mode="inotify") == 1


def test_changes_are_live_without_rescan(tmp_path: Path, start_daemon, watch_mode) -> None:
    db = tmp_path / "db"
    write_backup(db / "backup-1.db", 2000, time.time() - 100)
    config = make_config(targets=[{"path": str(db)}], watch_mode=watch_mode, poll_interval="0.2s")
    daemon = start_daemon(config)

    def count() -> float | None:
        return value(scrape(daemon.url), "backup_count", target="db")

    assert count() == 1
    write_backup(db / "backup-2.db", 3000)
    wait_for(lambda: count() == 2)
    newest = lambda: value(scrape(daemon.url), "backup_newest_size_bytes", target="db")  # noqa: E731
    assert newest() == 3000
    with open(db / "backup-2.db", "ab") as handle:  # grows
        handle.write(b"y" * 1000)
    wait_for(lambda: newest() == 4000)
    os.rename(db / "backup-2.db", db / "backup-renamed.db")
    wait_for(lambda: value(scrape(daemon.url), "backup_total_size_bytes", target="db") == 6000)
    # A temp file renamed into place: the move's destination is the backup.
    write_backup(db / "backup-3.db.part", 7000)
    os.rename(db / "backup-3.db.part", db / "backup-3.db")
    wait_for(lambda: newest() == 7000)
    # A metadata-only change (touch -d) makes an old file the newest.
    future = time.time() + 5
    os.utime(db / "backup-1.db", (future, future))
    wait_for(lambda: newest() == 2000)
    (db / "backup-renamed.db").unlink()
    wait_for(lambda: count() == 2)
    snap = daemon.targets[0].index.snapshot()
    assert snap.scans == 1  # all of that came from events, not rescans


def test_polling_matches_inotify(tmp_path: Path, start_daemon) -> None:
    now = time.time()
    for i in range(20):
        write_backup(tmp_path / f"backup-{i:02d}.db", 1000 + i * 10, now - i * 3600)
    daemons = [
        start_daemon(make_config(targets=[{"path": str(tmp_path)}], watch_mode=mode))
        for mode in ("inotify", "polling")
    ]
    names = ["count", "total_size_bytes", "newest_size_bytes", "newest_timestamp_seconds"]
    results = [
        [value(scrape(d.url), f"backup_{n}", target=tmp_path.name) for n in names] for d in daemons
    ]
    assert results[0] == results[1]
    assert results[0][0] == 20


def test_missing_directory_appears_later(tmp_path: Path, start_daemon) -> None:
    later = tmp_path / "later"
    daemon = start_daemon(make_config(targets=[{"path": str(later)}], retry_interval="0.2s"))
    s = scrape(daemon.url)
    assert value(s, "backup_target_up", target="later") == 0
    assert value(s, "backup_check_ok", check="target_down", target="later") == 0
    assert value(s, "backup_monitor_scan_errors_total", target="later") >= 1
    write_backup(later / "backup-1.db", 4096)
    wait_for(lambda: value(scrape(daemon.url), "backup_target_up", target="later") == 1)
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="later") == 1)
    # Watched now: a new file shows up through events.
    write_backup(later / "backup-2.db", 4096)
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="later") == 2)


def test_root_deleted_and_recreated_is_watched_again(tmp_path: Path, start_daemon) -> None:
    root = tmp_path / "root"
    write_backup(root / "backup-1.db", 2048)
    daemon = start_daemon(make_config(targets=[{"path": str(root)}], retry_interval="0.2s"))
    shutil.rmtree(root)
    wait_for(lambda: value(scrape(daemon.url), "backup_target_up", target="root") == 0)
    assert value(scrape(daemon.url), "backup_count", target="root") == 0
    write_backup(root / "backup-2.db", 3000)
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="root") == 1)
    write_backup(root / "backup-3.db", 5000)
    wait_for(lambda: value(scrape(daemon.url), "backup_newest_size_bytes", target="root") == 5000)


def test_symlinked_root_and_recursive_target(tmp_path: Path, start_daemon) -> None:
    real = tmp_path / "real"
    write_backup(real / "2026" / "01" / "backup-a.db", 2000)
    write_backup(real / ".snapshots" / "backup-hidden.db", 2000)  # hidden dirs are excluded
    link = tmp_path / "link"
    link.symlink_to(real)
    daemon = start_daemon(
        make_config(targets=[{"name": "tree", "path": str(link), "recursive": True}])
    )
    assert value(scrape(daemon.url), "backup_count", target="tree") == 1
    write_backup(real / "2026" / "02" / "backup-b.db", 2500)
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="tree") == 2)
    shutil.rmtree(real / "2026" / "01")
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="tree") == 1)


def test_reconciliation_fixes_a_missed_event(tmp_path: Path, start_daemon) -> None:
    write_backup(tmp_path / "backup-1.db", 2000)
    write_backup(tmp_path / "backup-2.db", 2000)
    daemon = start_daemon(make_config(targets=[{"name": "t", "path": str(tmp_path)}]))
    index = daemon.targets[0].index
    index.remove("backup-1.db")  # as if the watcher had missed the file
    index.upsert("ghost.db", 10, 0)  # and a delete
    assert value(scrape(daemon.url), "backup_count", target="t") == 2
    assert index.files().keys() == {"backup-2.db", "ghost.db"}
    daemon.supervisor.request_rescan_all()
    wait_for(
        lambda: (
            value(scrape(daemon.url), "backup_monitor_reconcile_corrections_total", target="t") == 2
        )
    )
    assert index.files().keys() == {"backup-1.db", "backup-2.db"}


def test_landing_page_and_health(tmp_path: Path, start_daemon) -> None:
    from tests.conftest import fetch

    daemon = start_daemon(make_config(targets=[{"path": str(tmp_path)}]))
    base = daemon.url.removesuffix("/metrics")
    assert 'href="metrics"' in fetch(base + "/")  # relative: works behind a path prefix
    assert fetch(base + "/healthz") == "ok\n"


def test_serve_settles_the_heap_out_of_the_collectors_reach() -> None:
    """After start-up and each reload, long-lived objects are frozen: a full GC no longer
    walks them (tens of milliseconds that would land on a scrape); a reload releases what
    the old configuration held."""

    class Node:
        peer: object = None

    node = Node()
    node.peer = node  # a cycle: only the cyclic collector can free it
    ref = weakref.ref(node)
    try:
        settle_heap()
        del node
        gc.collect()
        assert ref() is not None  # frozen: out of the collector's reach
        settle_heap()
        assert ref() is None  # released at the next settle (a reload)
    finally:
        gc.unfreeze()
