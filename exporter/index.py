"""TargetIndex: the single source of truth for one target, and its immutable snapshot.

Only the watcher and the supervisor write an index; everything else reads
snapshots. Each event costs O(1); the newest and oldest file are recomputed
lazily, and only when the current one was removed or made older.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Listener = Callable[[str], None]

# name -> (size in bytes, timestamp in seconds since the epoch)
FileMap = dict[str, tuple[int, float]]


@dataclass(frozen=True, slots=True)
class BackupFile:
    name: str
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """What is known of one target at one moment; cheap to pass around, never changes."""

    name: str
    path: str
    up: bool
    error: str
    scanned: bool
    count: int
    total_size: int
    newest: BackupFile | None
    oldest: BackupFile | None
    last_scan: float
    last_scan_duration: float
    scans: int
    scan_errors: int
    corrections: int
    version: int


def _key(item: tuple[str, tuple[int, float]]) -> tuple[float, str]:
    return item[1][1], item[0]


class TargetIndex:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self._lock = threading.Lock()
        self._files: FileMap = {}
        self._total = 0
        self._newest: str | None = None
        self._oldest: str | None = None
        self._extremes_stale = False
        self._up = False
        self._error = "not scanned yet"
        self._scanned = False
        self._last_scan = 0.0
        self._last_scan_duration = 0.0
        self._scans = 0
        self._scan_errors = 0
        self._corrections = 0
        self._version = 0
        self._touched: set[str] | None = None
        self._snapshot: TargetSnapshot | None = None
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(target_name)`` after every change (outside the lock)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.name)

    # --- incremental updates from events -------------------------------------------------

    def _put(self, name: str, size: int, mtime: float) -> bool:
        old = self._files.get(name)
        if old == (size, mtime):
            return False
        self._files[name] = (size, mtime)
        self._total += size - (old[0] if old else 0)
        if not self._extremes_stale:
            # Compare against the old timestamp: a newest file made older may no
            # longer be the newest, and only a full pass can tell which is.
            key = (mtime, name)
            if name == self._newest:
                self._extremes_stale = old is not None and mtime < old[1]
            elif self._newest is None or key > self._entry_key(self._newest):
                self._newest = name
            if name == self._oldest:
                self._extremes_stale |= old is not None and mtime > old[1]
            elif self._oldest is None or key < self._entry_key(self._oldest):
                self._oldest = name
        return True

    def _pop(self, name: str) -> bool:
        old = self._files.pop(name, None)
        if old is None:
            return False
        self._total -= old[0]
        if name in (self._newest, self._oldest):
            self._extremes_stale = True
        return True

    def _entry_key(self, name: str) -> tuple[float, str]:
        return self._files[name][1], name

    def upsert(self, name: str, size: int, mtime: float) -> None:
        with self._lock:
            if self._touched is not None:
                self._touched.add(name)
            changed = self._put(name, size, mtime)
            if changed:
                self._changed()
        if changed:
            self._notify()

    def remove(self, name: str) -> None:
        with self._lock:
            if self._touched is not None:
                self._touched.add(name)
            changed = self._pop(name)
            if changed:
                self._changed()
        if changed:
            self._notify()

    def remove_prefix(self, prefix: str) -> None:
        """Forget everything below a directory that was deleted or moved away."""
        with self._lock:
            names = [n for n in self._files if n.startswith(prefix)]
            if self._touched is not None:
                self._touched.update(names)
            for name in names:
                self._pop(name)
            if names:
                self._changed()
        if names:
            self._notify()

    # --- whole scans from the supervisor -------------------------------------------------

    def begin_scan(self) -> None:
        """Start recording names that events touch: they are fresher than the scan."""
        with self._lock:
            self._touched = set()

    def apply_scan(self, files: FileMap, finished_at: float, duration: float) -> int:
        """Make the index equal to a scan (but for names events touched meanwhile).

        Returns how many entries the scan corrected.
        """
        with self._lock:
            touched = self._touched or set()
            self._touched = None
            corrections = 0
            for name in [n for n in self._files if n not in files and n not in touched]:
                self._pop(name)
                corrections += 1
            for name, (size, mtime) in files.items():
                if name not in touched and self._put(name, size, mtime):
                    corrections += 1
            was_up, first = self._up, not self._scanned
            self._up, self._error, self._scanned = True, "", True
            self._last_scan, self._last_scan_duration = finished_at, duration
            self._scans += 1
            if not first:
                self._corrections += corrections
            changed = corrections > 0 or not was_up or first
            if changed:
                self._changed()
            else:
                self._snapshot = None  # the scan counters and time still moved
        if changed:
            self._notify()
        return corrections

    def mark_down(self, error: str, finished_at: float) -> None:
        """The directory is missing or unreadable: its backups are not visible."""
        with self._lock:
            self._touched = None
            was = (self._up, self._error, self._scanned)
            self._files.clear()
            self._total = 0
            self._newest = self._oldest = None
            self._extremes_stale = False
            self._up, self._error, self._scanned = False, error, True
            self._last_scan = finished_at
            self._scans += 1
            self._scan_errors += 1
            changed = was != (False, error, True)
            self._changed()
        if changed:
            self._notify()

    # --- reading -----------------------------------------------------------------------

    def files(self) -> FileMap:
        """A copy of the file map (for tests and verification; O(n))."""
        with self._lock:
            return dict(self._files)

    def snapshot(self) -> TargetSnapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._build_snapshot()
            return self._snapshot

    def _build_snapshot(self) -> TargetSnapshot:
        if self._extremes_stale:
            if self._files:
                self._newest = max(self._files.items(), key=_key)[0]
                self._oldest = min(self._files.items(), key=_key)[0]
            else:
                self._newest = self._oldest = None
            self._extremes_stale = False
        return TargetSnapshot(
            name=self.name,
            path=self.path,
            up=self._up,
            error=self._error,
            scanned=self._scanned,
            count=len(self._files),
            total_size=self._total,
            newest=self._file(self._newest),
            oldest=self._file(self._oldest),
            last_scan=self._last_scan,
            last_scan_duration=self._last_scan_duration,
            scans=self._scans,
            scan_errors=self._scan_errors,
            corrections=self._corrections,
            version=self._version,
        )

    def _file(self, name: str | None) -> BackupFile | None:
        if name is None:
            return None
        size, mtime = self._files[name]
        return BackupFile(name, size, mtime)
