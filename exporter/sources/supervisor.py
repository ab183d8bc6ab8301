"""Keeps every index right: initial scans, reconciliation rescans, down targets, watcher health.

One thread. It wakes for whichever comes first: a rescan request (queue
overflow, a root deleted, a directory moved in), the retry tick (every
``retry_interval``) for targets that are down, unwatched or whose root is no
longer the directory that is watched, or the periodic reconciliation (every
``rescan_interval``).

A root is known by its device and inode, not its path: a directory renamed away
and re-created, or a filesystem mounted over it or unmounted from it, keeps the
path but not the identity, and inotify says nothing of either.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable

from exporter.counters import DaemonStats
from exporter.index import Clock
from exporter.loop import Loop
from exporter.sources.apply import apply_listing
from exporter.sources.listing import scan_listing
from exporter.sources.watch import TargetEventHandler, Watcher
from exporter.target import Target

log = logging.getLogger(__name__)


def root_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a directory, or None when it cannot be reached."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def scan_into_index(target: Target, clock: Clock) -> None:
    """One full scan applied to the target's index (marks it down if the root is unusable)."""
    root = os.path.realpath(target.config.path)
    apply_listing(
        target, clock, lambda: scan_listing(root, target.matcher, target.config.recursive)
    )


class Supervisor(Loop):
    def __init__(
        self,
        targets: Iterable[Target],
        watcher: Watcher,
        stats: DaemonStats,
        rescan_interval: float,
        retry_interval: float,
        clock: Clock = time.time,
        watch_mode: str = "auto",
    ) -> None:
        super().__init__("supervisor", retry_interval)
        self.targets = {t.name: t for t in targets}
        self.watcher = watcher
        self.watch_mode = watch_mode  # for targets without a watch_mode of their own
        self._identity: dict[str, tuple[int, int] | None] = {}
        self.stats = stats
        self.rescan_interval = rescan_interval
        self.retry_interval = retry_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._requested: set[str] = set()
        self._rewatch: set[str] = set()
        self._next_rescan = time.monotonic() + rescan_interval

    def set_targets(
        self, targets: Iterable[Target], rescan_interval: float, retry_interval: float
    ) -> None:
        """Swap in a new target set (a reload); the loop picks it up at its next round."""
        self.targets = {t.name: t for t in targets}
        self.rescan_interval = rescan_interval
        self.retry_interval = self.interval = retry_interval
        self.wake()

    # --- requests from other threads ---------------------------------------------------

    def request_rescan(self, name: str, *, rewatch: bool = False) -> None:
        with self._lock:
            self._requested.add(name)
            if rewatch:
                self._rewatch.add(name)
        self.wake()

    def request_rescan_all(self) -> None:
        with self._lock:
            self._requested.update(self.targets)
        self.wake()

    # --- scanning ----------------------------------------------------------------------

    def _handler(self, target: Target, root: str) -> TargetEventHandler:
        return TargetEventHandler(
            target.index,
            root,
            target.matcher,
            target.stamp,
            target.config.recursive,
            self.stats,
            self.request_rescan,
            target.policy,
        )

    def _ensure_watch(self, target: Target) -> None:
        root = os.path.realpath(target.config.path)
        identity = root_identity(root)
        if (
            self.watcher.watched_root(target.name) == root
            and identity is not None
            and self._identity.get(target.name) == identity
        ):
            return
        requested = target.config.watch_mode or self.watch_mode
        try:
            target.watch_mode = self.watcher.watch(self._handler(target, root), requested)
            self._identity[target.name] = identity
        except OSError as exc:
            self.unwatch(target.name)
            log.debug("cannot watch %s yet: %s", target.config.path, exc)

    def unwatch(self, name: str) -> None:
        self.watcher.unwatch(name)
        self._identity.pop(name, None)
        if name in self.targets:
            self.targets[name].watch_mode = None

    def scan(self, target: Target) -> None:
        if target.config.remote:
            return  # listed by its own poller
        # Watch first, then scan: an event during the scan wins over the scan's older view.
        self._ensure_watch(target)
        scan_into_index(target, self.clock)
        if not target.index.snapshot().up:
            self.unwatch(target.name)

    def scan_all(self) -> None:
        for target in self.targets.values():
            self.scan(target)

    def _needs_retry(self, target: Target) -> bool:
        if target.config.remote:
            return False
        if not target.index.snapshot().up:
            return True
        # A watch lost with its root, or a root that is another directory now (a re-pointed
        # symlink too): rescan and re-watch. One stat per target and tick: the configured
        # path's (device, inode), followed through symlinks, is the watched root's.
        if self.watcher.watched_root(target.name) is None:
            return True
        if root_identity(target.config.path) != self._identity.get(target.name):
            log.warning(
                "target %s: %s is no longer the directory watched (moved, re-created, "
                "mounted over or unmounted); rescanning",
                target.name,
                target.config.path,
            )
            return True
        return False

    def tick(self) -> None:
        """One round of the loop's work (public so tests can drive it without waiting)."""
        if self.watcher.ensure_alive():
            self.request_rescan_all()
        with self._lock:
            requested, self._requested = self._requested, set()
            rewatch, self._rewatch = self._rewatch, set()
        for name in rewatch:
            self.unwatch(name)
        now = time.monotonic()
        if now >= self._next_rescan:
            self._next_rescan = now + self.rescan_interval
            requested.update(self.targets)
        for target in self.targets.values():
            if target.name in requested or self._needs_retry(target):
                self.scan(target)

    # --- thread ------------------------------------------------------------------------

    def start(self, *, first_round_now: bool = False) -> None:
        # The initial scan was done before start: the first round waits a retry tick.
        self.last_success = time.monotonic()
        super().start(first_round_now=first_round_now)

    def is_healthy(self) -> bool:
        """The loop runs and its last round succeeded recently."""
        if not self.is_alive() or self.failing:
            return False
        return time.monotonic() - self.last_success < max(10.0, 5 * self.retry_interval)

    def round(self) -> float:
        self.tick()
        return min(self.retry_interval, max(0.0, self._next_rescan - time.monotonic()))
