"""Watchdog events -> index updates, and the observer's life cycle.

Watchdog traps handled here (each has a test):
- an exception in a handler kills the observer thread silently: handlers catch everything;
- a deleted root stops its emitter for good: the root's own deletion marks the
  target for a rescan, and the supervisor re-schedules the watch when it is back;
- ``schedule()`` raises for a missing root: the caller treats that as "target down";
- an inotify queue overflow is only logged: a handler on watchdog's logger turns
  it into a rescan of every target;
- ``touch -d`` / ``os.utime`` arrive as ``FileAttribEvent``: handled like a write;
- a symlinked root: watches are placed on its real path;
- a temp file renamed into place: a move whose ``dest_path`` is the backup.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from typing import Protocol

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from exporter.index import TargetIndex
from exporter.matcher import Matcher
from exporter.scan import stat_backup
from exporter.stats import DaemonStats
from exporter.timestamps import Stamper

log = logging.getLogger(__name__)


class RescanRequest(Protocol):
    def __call__(self, name: str, *, rewatch: bool = False) -> None: ...


ObserverFactory = Callable[[str, float], BaseObserver]

# Errors that mean "inotify cannot be used here", as opposed to "this directory is gone".
INOTIFY_LIMIT_ERRNOS = {errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOSYS, errno.EINVAL}


def default_observer_factory(mode: str, poll_interval: float) -> BaseObserver:
    if mode == "polling":
        return PollingObserver(timeout=poll_interval)
    return InotifyObserver()


def _text(path: str | bytes) -> str:
    return os.fsdecode(path)


class TargetEventHandler(FileSystemEventHandler):
    """Applies one target's events to its index; never raises."""

    def __init__(
        self,
        index: TargetIndex,
        root: str,
        matcher: Matcher,
        stamp: Stamper,
        recursive: bool,
        stats: DaemonStats,
        request_rescan: RescanRequest,
    ) -> None:
        self.index = index
        self.root = root
        self.matcher = matcher
        self.stamp = stamp
        self.recursive = recursive
        self.stats = stats
        self.request_rescan = request_rescan

    def _relative(self, path: str | bytes) -> str | None:
        rel = os.path.relpath(_text(path), self.root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None
        if not self.recursive and os.sep in rel:
            return None
        return rel.replace(os.sep, "/")

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self.stats.count_event()
            self._apply(event)
        except Exception:  # one escaping exception would kill the observer thread
            log.exception("error handling %s for target %s; rescanning", event, self.index.name)
            self.request_rescan(self.index.name)

    def _apply(self, event: FileSystemEvent) -> None:
        src = _text(event.src_path)
        if event.is_directory:
            self._apply_dir(event, src)
            return
        if event.event_type == "moved":
            self._forget(src)
            self._refresh(_text(event.dest_path))
        elif event.event_type == "deleted":
            self._forget(src)
        elif event.event_type in ("created", "modified", "closed", "attrib"):
            self._refresh(src)

    def _apply_dir(self, event: FileSystemEvent, src: str) -> None:
        if os.path.realpath(src) == self.root or src == self.root:
            if isinstance(event, DirDeletedEvent | DirMovedEvent) or event.event_type == "attrib":
                # The root itself went away or changed permissions: only a scan can tell,
                # and a deleted root's watch is dead for good, so it must be scheduled anew.
                self.request_rescan(self.index.name, rewatch=True)
            return
        if not self.recursive:
            return
        if isinstance(event, DirDeletedEvent | DirMovedEvent):
            rel = self._relative(src)
            if rel is not None:
                self.index.remove_prefix(rel + "/")
        if isinstance(event, DirMovedEvent) or event.event_type == "created":
            # A directory moved or created here may already hold backups.
            self.request_rescan(self.index.name)

    def _forget(self, path: str) -> None:
        rel = self._relative(path)
        if rel is not None:
            self.index.remove(rel)

    def _refresh(self, path: str) -> None:
        rel = self._relative(path)
        if rel is None or not self.matcher.wants_file(rel):
            return
        info = stat_backup(path)
        if info is None:
            self.index.remove(rel)
            return
        ts = self.stamp(rel, info[1])
        if ts is not None:
            self.index.upsert(rel, info[0], ts)
        elif self.index.mark_unparsed(rel):
            log.warning(
                "target %s: %r does not match name_format; counted apart", self.index.name, rel
            )


class OverflowListener(logging.Handler):
    """Turns watchdog's "queue overflowed" log line into a rescan of every target."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


class Watcher:
    """Owns the observer: schedules one watch per target, falls back to polling, restarts."""

    def __init__(
        self,
        mode: str,
        poll_interval: float,
        stats: DaemonStats,
        factory: ObserverFactory = default_observer_factory,
    ) -> None:
        self.requested_mode = mode
        self.mode = "polling" if mode == "polling" else "inotify"
        self.poll_interval = poll_interval
        self.stats = stats
        self.factory = factory
        self._lock = threading.RLock()
        self._handlers: dict[str, TargetEventHandler] = {}
        self._watches: dict[str, ObservedWatch] = {}
        self._observer = self._new_observer()
        self.stats.set_watch_mode(self.mode)

    def _new_observer(self) -> BaseObserver:
        observer = self.factory(self.mode, self.poll_interval)
        observer.daemon = True
        observer.start()
        return observer

    def watched_root(self, name: str) -> str | None:
        """The real path a target is watched at, or None when it is not watched."""
        with self._lock:
            handler = self._handlers.get(name) if name in self._watches else None
            return handler.root if handler else None

    def watch(self, handler: TargetEventHandler) -> None:
        """Schedule (or re-schedule) a target's watch; raises OSError if its root is unusable."""
        with self._lock:
            self.unwatch(handler.index.name)
            try:
                watch = self._observer.schedule(handler, handler.root, recursive=handler.recursive)
            except OSError as exc:
                if exc.errno not in INOTIFY_LIMIT_ERRNOS or self.mode == "polling":
                    raise
                if self.requested_mode == "inotify":
                    log.error("inotify unusable (%s) and watch_mode is inotify", exc.strerror)
                    raise
                self._fall_back(exc)
                watch = self._observer.schedule(handler, handler.root, recursive=handler.recursive)
            self._handlers[handler.index.name] = handler
            self._watches[handler.index.name] = watch

    def unwatch(self, name: str) -> None:
        with self._lock:
            watch = self._watches.pop(name, None)
            self._handlers.pop(name, None)
            if watch is not None:
                # Its emitter may have stopped already (root deleted): nothing to undo then.
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(watch)

    def _fall_back(self, exc: OSError) -> None:
        log.warning(
            "inotify cannot be used (%s); falling back to polling every %ss",
            exc.strerror or exc,
            self.poll_interval,
        )
        self._replace_observer("polling")

    def _replace_observer(self, mode: str) -> None:
        handlers = list(self._handlers.values())
        self._stop_observer()
        self._watches.clear()
        self._handlers.clear()
        self.mode = mode
        self.stats.set_watch_mode(mode)
        self._observer = self._new_observer()
        for handler in handlers:
            try:
                self.watch(handler)
            except OSError as exc:
                log.warning("cannot watch %s again: %s", handler.root, exc.strerror or exc)

    def ensure_alive(self) -> bool:
        """Restart a dead observer thread with all its watches; True if it had died."""
        with self._lock:
            if self._observer.is_alive():
                return False
            log.error("the file watcher thread died; restarting it")
            self._replace_observer(self.mode)
            return True

    def _stop_observer(self) -> None:
        try:
            self._observer.stop()
            self._observer.join(timeout=2)
        except (OSError, RuntimeError):
            pass

    def stop(self) -> None:
        with self._lock:
            self._stop_observer()
