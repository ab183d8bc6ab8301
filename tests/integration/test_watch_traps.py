"""The watchdog traps of the core issue, each provoked for real."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver

from exporter.commands.logs import setup_logging
from tests.conftest import make_config, scrape, value, wait_for, write_backup


def count(daemon, target: str) -> float | None:
    return value(scrape(daemon.url), "backup_count", target=target)


def test_handler_exception_does_not_kill_the_observer(
    tmp_path: Path, start_daemon, monkeypatch
) -> None:
    daemon = start_daemon(make_config(targets=[{"name": "t", "path": str(tmp_path)}]))
    index = daemon.targets[0].index
    real_upsert = index.upsert
    calls = []

    def explode_once(*args) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("boom")
        real_upsert(*args)

    monkeypatch.setattr(index, "upsert", explode_once)
    write_backup(tmp_path / "backup-1.db", 2000)
    # The failed event asks for a rescan (later events may find the file first).
    wait_for(lambda: index.snapshot().scans == 2)
    assert count(daemon, "t") == 1
    scans = index.snapshot().scans
    write_backup(tmp_path / "backup-2.db", 2000)
    wait_for(lambda: count(daemon, "t") == 2)  # events still flow: the observer lives
    assert index.snapshot().scans == scans


def test_dead_observer_is_restarted(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(
        make_config(targets=[{"name": "t", "path": str(tmp_path)}], retry_interval="0.1s")
    )
    old = daemon.watcher._observer
    old.stop()
    old.join(2)
    write_backup(tmp_path / "backup-1.db", 2000)  # missed by the dead observer
    wait_for(lambda: count(daemon, "t") == 1)  # found by the rescan after the restart
    assert daemon.watcher._observer is not old
    write_backup(tmp_path / "backup-2.db", 2000)
    wait_for(lambda: count(daemon, "t") == 2)


@pytest.mark.parametrize("log_level", ["warning", "error"])
def test_queue_overflow_triggers_rescan(tmp_path: Path, start_daemon, log_level: str) -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("watchdog").level)
    setup_logging(log_level, "text")  # as `serve --log-level error` does
    try:
        _overflow_rescans(tmp_path, start_daemon)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        logging.getLogger("watchdog").setLevel(saved[2])


def _overflow_rescans(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(make_config(targets=[{"name": "t", "path": str(tmp_path)}]))
    index = daemon.targets[0].index
    index.upsert("lost-event.db", 5000, 1.0)  # the index is now wrong, as after lost events
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    wait_for(lambda: index.snapshot().scans == 2)
    assert count(daemon, "t") == 0


class ExhaustedInotify(InotifyObserver):
    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def exhausted_factory() -> BaseObserver:
    return ExhaustedInotify()


def test_watch_limit_falls_back_to_polling(tmp_path: Path, start_daemon, caplog) -> None:
    write_backup(tmp_path / "backup-1.db", 2000)
    config = make_config(targets=[{"name": "t", "path": str(tmp_path)}], poll_interval="0.2s")
    with caplog.at_level(logging.WARNING):
        daemon = start_daemon(config, observer_factory=exhausted_factory)
    s = scrape(daemon.url)
    assert value(s, "backup_monitor_watch_mode", target="t", mode="polling") == 1
    assert value(s, "backup_monitor_watch_mode", target="t", mode="inotify") == 0
    assert "falling back to polling" in caplog.text
    assert value(s, "backup_count", target="t") == 1
    write_backup(tmp_path / "backup-2.db", 2000)
    wait_for(lambda: count(daemon, "t") == 2)
    assert daemon.targets[0].index.snapshot().scans == 1  # seen by polling, not a rescan
