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

from exporter.counters import DaemonStats
from exporter.index import TargetIndex
from exporter.sources.listing import is_symlink_alias, stat_backup
from exporter.sources.matcher import Matcher
from exporter.sources.mounts import choose_mode
from exporter.sources.permissions import Policy, check_path
from exporter.sources.polling import DirectoryPoller
from exporter.sources.stat_helper import SYMLINK
from exporter.timestamps import Stamper

log = logging.getLogger(__name__)


class RescanRequest(Protocol):
    def __call__(self, name: str, *, rewatch: bool = False) -> None: ...


ObserverFactory = Callable[[], BaseObserver]

# Errors that mean "inotify cannot be used here", as opposed to "this directory is gone".
INOTIFY_LIMIT_ERRNOS = {errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOSYS, errno.EINVAL}
WATCH_MODES = ("inotify", "polling")


def default_observer_factory() -> BaseObserver:
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
        policy: Policy | None = None,
    ) -> None:
        self.policy = policy  # the permission policy, checked again at each file event
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
            self.forget(src)
            self.refresh(_text(event.dest_path))
        elif event.event_type == "deleted":
            self.forget(src)
        elif event.event_type in ("created", "modified", "closed", "attrib"):
            self.refresh(src)

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

    def forget(self, path: str) -> None:
        rel = self._relative(path)
        if rel is None:
            return
        if self.index.has_links(rel):
            # Another name of the same file may count now: only a scan can tell which.
            self.request_rescan(self.index.name)
        self.index.remove(rel)

    def refresh(self, path: str) -> None:
        rel = self._relative(path)
        if rel is None or not self.matcher.wants_file(rel):
            return
        info = stat_backup(path)
        if info is None or (
            info[2] == SYMLINK and is_symlink_alias(self.root, rel, self.matcher, self.recursive)
        ):
            self.index.remove(rel)
            return
        size, mtime, link = info
        if link > 0 and not self.index.knows_inode(link):
            # A new hard link: its other names were counted without their inode, so only
            # a scan can tell which name counts.
            self.request_rescan(self.index.name)
            return
        if self.policy is not None:  # a chmod or chown arrives here as an attribute event
            self.index.set_insecure(check_path(self.root, rel, self.policy), only=rel)
        ts = self.stamp(rel, mtime)
        if ts is not None:
            self.index.upsert(rel, size, ts, mtime, max(link, 0))
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
    """Watches each target in its own mode: inotify (one observer) or polling (one poller).

    ``auto`` polls targets on filesystems where inotify misses other writers (network,
    FUSE) and falls back to polling, per target, when inotify runs out of watches.
    """

    def __init__(
        self,
        poll_interval: float,
        stats: DaemonStats,
        factory: ObserverFactory = default_observer_factory,
    ) -> None:
        self.stats = stats
        self.factory = factory
        self.poller = DirectoryPoller(poll_interval)
        self._lock = threading.RLock()
        self._handlers: dict[str, TargetEventHandler] = {}
        self._watches: dict[str, ObservedWatch] = {}
        self._modes: dict[str, tuple[str, str]] = {}  # target -> (mode, why), as last logged
        self._observer = self._new_observer()

    def _new_observer(self) -> BaseObserver:
        observer = self.factory()
        observer.daemon = True
        observer.start()
        return observer

    def mode(self, name: str) -> str | None:
        """How a target is watched now (inotify or polling), or None when it is not."""
        with self._lock:
            return self._modes[name][0] if name in self._handlers else None

    def watched_root(self, name: str) -> str | None:
        """The real path a target is watched at, or None when it is not watched."""
        with self._lock:
            handler = self._handlers.get(name)
            return handler.root if handler else None

    def watch(self, handler: TargetEventHandler, requested: str) -> str:
        """(Re-)watch a target in the mode ``requested`` (auto, inotify or polling) leads to.

        Returns the mode in use; raises OSError if the root is unusable.
        """
        name = handler.index.name
        with self._lock:
            self.unwatch(name)
            mode, why = choose_mode(requested, handler.root)
            if mode == "inotify":
                try:
                    self._watches[name] = self._observer.schedule(
                        handler, handler.root, recursive=handler.recursive
                    )
                except OSError as exc:
                    if exc.errno not in INOTIFY_LIMIT_ERRNOS or requested == "inotify":
                        if requested == "inotify":
                            log.error("inotify unusable (%s) and watch_mode is inotify", exc)
                        raise
                    mode = "polling"
                    why = f"inotify cannot be used ({exc.strerror or exc}); falling back to polling"
            if mode == "polling":
                self.poller.watch(handler)
            self._handlers[name] = handler
            if self._modes.get(name) != (mode, why):
                level = logging.WARNING if "falling back" in why else logging.INFO
                log.log(level, "target %s: watched by %s (%s)", name, mode, why)
            self._modes[name] = (mode, why)
            return mode

    def unwatch(self, name: str) -> None:
        with self._lock:
            watch = self._watches.pop(name, None)
            self._handlers.pop(name, None)
            self.poller.unwatch(name)
            if watch is not None:
                # Its emitter may have stopped already (root deleted): nothing to undo then.
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(watch)

    def ensure_alive(self) -> bool:
        """Restart a dead observer thread with all its watches; True if it had died."""
        with self._lock:
            if self._observer.is_alive():
                return False
            log.error("the file watcher thread died; restarting it")
            handlers = [self._handlers[n] for n in self._watches]
            self._stop_observer()
            self._watches.clear()
            self._observer = self._new_observer()
            for handler in handlers:
                try:
                    self.watch(handler, "inotify")
                except OSError as exc:
                    log.warning("cannot watch %s again: %s", handler.root, exc.strerror or exc)
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
            self.poller.stop()
