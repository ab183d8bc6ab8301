"""TargetIndex: the single source of truth for one target, and its immutable snapshot.

Only the watcher and the supervisor write an index; everything else reads
snapshots. Besides the name -> (size, timestamp) map, the index keeps its
entries in a list sorted by (timestamp, name): newest and oldest are its ends,
and an update is a binary search plus one C-level move of pointers, so each
event stays cheap even at 100,000 files. Snapshots are cached until the next
change.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress, count, islice
from operator import eq, itemgetter

Clock = Callable[[], float]
Listener = Callable[[str], None]

# name -> (size in bytes, timestamp in seconds since the epoch)
FileMap = dict[str, tuple[int, float]]
# (timestamp, name, size): the sort order of the history
Entry = tuple[float, str, int]

# Above this many corrections a scan re-sorts the whole list instead of inserting one by one.
_BULK = 64


def sort_entries(entries: list[Entry]) -> list[Entry]:
    """``sorted(entries)``, three times faster at 100,000 entries.

    Comparing floats is much cheaper than comparing tuples, so sort by timestamp
    alone, then put each run of equal timestamps (rare) in full tuple order.
    """
    entries.sort(key=itemgetter(0))
    stamps = [entry[0] for entry in entries]
    end = 0
    for i in compress(count(1), map(eq, stamps, islice(stamps, 1, None))):
        if i > end:  # stamps[i - 1] == stamps[i] starts a run not yet put in order
            start, end = i - 1, bisect.bisect_right(stamps, stamps[i])
            entries[start:end] = sorted(entries[start:end])
    return entries


@dataclass(frozen=True, slots=True)
class BackupFile:
    name: str
    size: int
    mtime: float  # the backup's timestamp: its mtime, or the time in its name


@dataclass(frozen=True, slots=True)
class Writing:
    """A backup seen changing lately: still being written until ``settle`` passes quietly."""

    name: str
    first_seen: float  # when the daemon first saw it changing
    last_change: float  # its mtime, or when the daemon saw its size change, if later


@dataclass(frozen=True, slots=True)
class Verification:
    """The latest content check of a target's newest backup."""

    name: str
    ok: bool
    reason: str
    method: str
    finished_at: float
    duration: float
    size: int = 0  # of the backup as it was verified
    stamp: float = 0.0  # its timestamp then


@dataclass(frozen=True, slots=True)
class Space:
    """The target's filesystem: bytes an unprivileged writer may still use, and its size."""

    avail: int
    size: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the newest complete backup's first bytes say it is."""

    name: str
    size: int
    stamp: float
    encryption: str | None  # age, openpgp, openssl; None: not encrypted
    looks_like: str  # "SQLite database", "gzip data", "age-encrypted data"...


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
    unparsed: int  # files whose names did not give a timestamp
    unreadable: int  # entries the last scan could not read (path too long, no permission)
    history: tuple[Entry, ...]  # every backup, oldest first (only where a check needs it)
    verification: Verification | None
    stale: bool  # down, but showing the last good listing (remote targets)
    last_scan: float
    last_scan_duration: float
    scans: int
    scan_errors: int
    corrections: int
    version: int
    settle: float = 0.0
    writing: tuple[Writing, ...] = ()  # backups that changed within ``settle`` of the build
    tail: tuple[Entry, ...] = ()  # the newest len(writing) + 1 entries, oldest first
    space: Space | None = None  # the filesystem's free space (local targets)
    # Paths breaking the permission policy: (path, what is wrong), at most INSECURE_SHOWN.
    insecure: tuple[tuple[str, str], ...] = ()
    insecure_count: int = 0
    envelope: Envelope | None = None

    def unsettled(self, now: float) -> list[Writing]:
        """The backups still being written at ``now`` (changed less than ``settle`` ago)."""
        return [w for w in self.writing if now < w.last_change + self.settle]

    def settled_newest(self, now: float) -> BackupFile | None:
        """The newest backup that is complete: the one size and content checks judge."""
        busy = {w.name for w in self.unsettled(now)}
        if not busy:
            return self.newest
        for ts, name, size in reversed(self.tail):
            if name not in busy:
                return BackupFile(name, size, ts)
        return None

    def verification_pending(self, now: float) -> bool:
        """Whether the newest complete backup has not been verified (as it is now)."""
        newest, done = self.settled_newest(now), self.verification
        if newest is None:
            return False
        return done is None or (done.name, done.size, done.stamp) != (
            newest.name,
            newest.size,
            newest.mtime,
        )

    def settles_at(self, now: float) -> float | None:
        """When the next backup still being written counts as complete, if it stays quiet."""
        return min((w.last_change + self.settle for w in self.unsettled(now)), default=None)


# Offending paths a snapshot carries (the count is exact).
INSECURE_SHOWN = 5
# Free space is published when it moved by at least this much, or 1 % of the filesystem,
# or when it crossed one of the target's limits: a busy disk is not a change of every
# target on it every few seconds (each change re-evaluates the target's checks).
SPACE_STEP = 1024**2


class TargetIndex:
    def __init__(
        self,
        name: str,
        path: str,
        keep_history: bool = False,
        clock: Clock = time.time,
        settle: float = 0.0,
    ) -> None:
        self.name = name
        self.path = path
        self.keep_history = keep_history
        self.clock = clock
        self.settle = settle
        self._lock = threading.Lock()
        self._files: FileMap = {}
        self._order: list[Entry] = []
        self._unparsed: set[str] = set()
        self._unreadable = 0
        self._peak = 0  # the most entries held since the maps were last rebuilt
        self._total = 0
        self._writing: dict[str, tuple[float, float]] = {}  # name -> (first seen, last change)
        # Hard-linked backups (st_nlink > 1): one name per inode counts, the first in sort order.
        self._inodes: dict[int, str] = {}
        self._ino_of: dict[str, int] = {}
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
        self._verification: Verification | None = None
        self._space: Space | None = None
        self._insecure: dict[str, str] = {}
        self._envelope: Envelope | None = None
        self._stale = False
        self._snapshot: TargetSnapshot | None = None
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(target_name)`` after every change (outside the lock)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None
        self._compact()

    def _compact(self) -> None:
        """Give memory back after mass deletion: Python's dicts and sets never shrink, so
        once they hold a quarter of their peak they are rebuilt at their present size."""
        size = len(self._files) + len(self._unparsed)
        self._peak = max(self._peak, size)
        if self._peak >= 4096 and size * 4 <= self._peak:
            self._files = dict(self._files)
            self._unparsed = set(self._unparsed)
            self._order = self._order[:]
            self._writing = dict(self._writing)
            self._ino_of = dict(self._ino_of)
            self._inodes = dict(self._inodes)
            self._peak = size

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.name)

    # --- primitive edits (lock held) -----------------------------------------------------

    def _put(self, name: str, size: int, ts: float, bulk: bool = False) -> bool:
        old = self._files.get(name)
        if old == (size, ts):
            return False
        if old is not None:
            self._total -= old[0]
            if not bulk:
                del self._order[bisect.bisect_left(self._order, (old[1], name, old[0]))]
        self._files[name] = (size, ts)
        self._total += size
        if not bulk:
            bisect.insort(self._order, (ts, name, size))
        return True

    def _pop(self, name: str, bulk: bool = False) -> bool:
        old = self._files.pop(name, None)
        if old is None:
            return False
        self._total -= old[0]
        if not bulk:
            del self._order[bisect.bisect_left(self._order, (old[1], name, old[0]))]
        self._writing.pop(name, None)
        self._insecure.pop(name, None)
        self._forget_inode(name)
        return True

    def _forget_inode(self, name: str) -> None:
        ino = self._ino_of.pop(name, None)
        if ino is not None and self._inodes.get(ino) == name:
            del self._inodes[ino]

    def _resort(self) -> None:
        self._order = sort_entries([(ts, name, size) for name, (size, ts) in self._files.items()])

    def _saw_change(self, name: str, old_size: int | None, size: int, mtime: float) -> None:
        """Record when a backup last changed: its mtime, or now if its size moved."""
        now = self.clock()
        last = now if old_size is not None and old_size != size else mtime
        if last + self.settle > now:
            first = self._writing.get(name, (now, 0.0))[0]
            self._writing[name] = (first, max(last, self._writing.get(name, (0.0, 0.0))[1]))
        else:
            self._writing.pop(name, None)

    def _alias(self, name: str, ino: int) -> bool:
        """Whether ``name`` is another link to a backup counted under an earlier name.

        A hard link is not another backup: one name per inode counts, the first in sort
        order, whichever arrived first (so events and scans agree).
        """
        if not ino:
            self._forget_inode(name)
            return False
        holder = self._inodes.get(ino)
        if holder is not None and holder != name and holder in self._files:
            if holder < name:
                return True
            self._pop(holder)
        self._forget_inode(name)
        self._inodes[ino] = name
        self._ino_of[name] = ino
        return False

    # --- incremental updates from events -------------------------------------------------

    def _edit(self, names: list[str], edit: Callable[[], bool]) -> None:
        with self._lock:
            if self._touched is not None:
                self._touched.update(names)
            changed = edit()
            if changed:
                self._changed()
        if changed:
            self._notify()

    def upsert(
        self, name: str, size: int, ts: float, mtime: float | None = None, ino: int = 0
    ) -> None:
        """A backup seen by an event or a poll; ``mtime`` defaults to ``ts``, ``ino`` is
        its inode when it is hard-linked."""

        def edit() -> bool:
            was_unparsed = name in self._unparsed
            self._unparsed.discard(name)
            if self._alias(name, ino):
                return self._pop(name) or was_unparsed
            old = self._files.get(name)
            self._saw_change(name, old[0] if old else None, size, ts if mtime is None else mtime)
            return self._put(name, size, ts) or was_unparsed

        self._edit([name], edit)

    def mark_unparsed(self, name: str) -> bool:
        """A file whose name gives no timestamp: counted apart. True if it is new."""
        is_new = False

        def edit() -> bool:
            nonlocal is_new
            is_new = name not in self._unparsed
            self._unparsed.add(name)
            return self._pop(name) or is_new

        self._edit([name], edit)
        return is_new

    def remove(self, name: str) -> None:
        def edit() -> bool:
            was_unparsed = name in self._unparsed
            self._unparsed.discard(name)
            return self._pop(name) or was_unparsed

        self._edit([name], edit)

    def remove_prefix(self, prefix: str) -> None:
        """Forget everything below a directory that was deleted or moved away."""
        with self._lock:
            names = [n for n in (*self._files, *self._unparsed) if n.startswith(prefix)]
        for name in names:
            self.remove(name)

    # --- whole scans from the supervisor -------------------------------------------------

    def begin_scan(self) -> None:
        """Start recording names that events touch: they are fresher than the scan."""
        with self._lock:
            self._touched = set()

    def apply_scan(
        self,
        files: FileMap,
        unparsed: set[str],
        finished_at: float,
        duration: float,
        recent: dict[str, float] | None = None,
        inodes: dict[str, int] | None = None,
        unreadable: int = 0,
    ) -> int:
        """Make the index equal to a scan (but for names events touched meanwhile).

        ``recent`` gives the mtimes of backups modified within ``settle`` (None: the
        timestamps are the mtimes, so the index finds them itself); ``inodes`` the inode
        of each hard-linked backup the scan kept. Returns how many entries it corrected.
        """
        with self._lock:
            touched = self._touched or set()
            self._touched = None
            first = not self._scanned
            if first and not self._files:
                # The first scan of an empty index: take the map whole and sort once.
                self._files = dict(files)
                self._total = sum(map(itemgetter(0), files.values()))
                self._resort()
                corrections = len(files)
            else:
                stale = [n for n in self._files if n not in files and n not in touched]
                fresh = [
                    (n, v) for n, v in files.items() if n not in touched and self._files.get(n) != v
                ]
                bulk = first or len(stale) + len(fresh) > _BULK
                for name in stale:
                    self._pop(name, bulk)
                for name, (size, ts) in fresh:
                    self._put(name, size, ts, bulk)
                if bulk:
                    self._resort()
                corrections = len(stale) + len(fresh)
            self._scan_marks(files, touched, finished_at, recent, inodes or {})
            self._unreadable = unreadable
            new_unparsed = (self._unparsed & touched) | (unparsed - touched)
            corrections += len(new_unparsed ^ self._unparsed)
            self._unparsed = new_unparsed
            was_up = self._up
            self._up, self._error, self._scanned, self._stale = True, "", True, False
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

    def _scan_marks(
        self,
        files: FileMap,
        touched: set[str],
        finished_at: float,
        recent: dict[str, float] | None,
        inodes: dict[str, int],
    ) -> None:
        """Writing and inode records after a scan (lock held): events' records stand."""
        if recent is None:
            cut = bisect.bisect_right(self._order, (finished_at - self.settle, "\U0010ffff"))
            recent = {name: ts for ts, name, _size in self._order[cut:]}
        self._writing = {n: w for n, w in self._writing.items() if n in touched and n in files}
        for name, mtime in recent.items():
            if name not in touched and mtime + self.settle > finished_at:
                self._writing[name] = (finished_at, mtime)
        kept = {n: i for n, i in self._ino_of.items() if n in touched and n in self._files}
        kept.update((n, i) for n, i in inodes.items() if n not in touched)
        self._ino_of = kept
        self._inodes = {i: n for n, i in kept.items()}

    def mark_unreachable(self, error: str, finished_at: float) -> None:
        """A remote target could not be listed: down, but its last values stay, stale."""
        with self._lock:
            self._stale = bool(self._files)
            changed = self._scan_failed(error, finished_at)
        if changed:
            self._notify()

    def mark_down(self, error: str, finished_at: float) -> None:
        """The directory is missing or unreadable: its backups are not visible."""
        with self._lock:
            self._files.clear()
            self._order.clear()
            self._unparsed.clear()
            self._writing.clear()
            self._inodes.clear()
            self._ino_of.clear()
            self._total = 0
            changed = self._scan_failed(error, finished_at)
        if changed:
            self._notify()

    def _scan_failed(self, error: str, finished_at: float) -> bool:
        """Record a failed scan (lock held); True if the target's up/error state changed."""
        was = (self._up, self._error, self._scanned)
        self._touched = None
        self._up, self._error, self._scanned = False, error, True
        self._last_scan = finished_at
        self._scans += 1
        self._scan_errors += 1
        self._changed()
        return was != (False, error, True)

    def set_verification(self, verification: Verification) -> None:
        with self._lock:
            self._verification = verification
            self._changed()
        self._notify()

    def set_envelope(self, envelope: Envelope) -> None:
        with self._lock:
            if envelope == self._envelope:
                return
            self._envelope = envelope
            self._changed()
        self._notify()

    def set_space(self, space: Space, limits: tuple[float, ...] = ()) -> None:
        """A new free-space sample: published when it moved by SPACE_STEP and 1 % of the
        filesystem, or crossed one of ``limits`` (bytes the checks compare it with)."""
        with self._lock:
            old = self._space
            if (
                old is not None
                and old.size == space.size
                and abs(old.avail - space.avail) < max(SPACE_STEP, space.size // 100)
                and all((old.avail < limit) == (space.avail < limit) for limit in limits)
            ):
                return
            self._space = space
            self._changed()
        self._notify()

    def set_insecure(self, found: dict[str, str], only: str | None = None) -> None:
        """The paths breaking the permission policy: all of them (a sweep), or, with
        ``only``, what is now known of that one path (an event)."""
        with self._lock:
            if only is None:
                new = dict(found)
            else:
                new = {k: v for k, v in self._insecure.items() if k != only}
                new.update(found)
            if new == self._insecure:
                return
            self._insecure = new
            self._changed()
        self._notify()

    # --- reading -----------------------------------------------------------------------

    def files(self) -> FileMap:
        """A copy of the file map (for tests and verification; O(n))."""
        with self._lock:
            return dict(self._files)

    def names(self) -> set[str]:
        """Every name the index knows, backups and unparsed files (O(n), for polling)."""
        with self._lock:
            return set(self._files) | self._unparsed

    def changing(self, newest: int = 2) -> set[str]:
        """The names a poll re-stats: backups being written and the newest ones."""
        with self._lock:
            return set(self._writing) | {entry[1] for entry in self._order[-newest:]}

    def count_after(self, ts: float) -> int:
        """How many backups are dated after ``ts`` (future-dated files); O(log n)."""
        with self._lock:
            return len(self._order) - bisect.bisect_right(self._order, (ts, "\U0010ffff"))

    def snapshot(self) -> TargetSnapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._build_snapshot()
            return self._snapshot

    def knows_inode(self, ino: int) -> bool:
        with self._lock:
            return ino in self._inodes

    def has_links(self, name: str) -> bool:
        """Whether a backup was hard-linked (its other names may need counting when it goes)."""
        with self._lock:
            return name in self._ino_of

    def _build_snapshot(self) -> TargetSnapshot:
        order = self._order
        now = self.clock()
        self._writing = {n: w for n, w in self._writing.items() if w[1] + self.settle > now}
        writing = tuple(Writing(n, first, last) for n, (first, last) in self._writing.items())
        return TargetSnapshot(
            name=self.name,
            path=self.path,
            up=self._up,
            error=self._error,
            scanned=self._scanned,
            count=len(order),
            total_size=self._total,
            newest=BackupFile(order[-1][1], order[-1][2], order[-1][0]) if order else None,
            oldest=BackupFile(order[0][1], order[0][2], order[0][0]) if order else None,
            unparsed=len(self._unparsed),
            unreadable=self._unreadable,
            history=tuple(order) if self.keep_history else (),
            verification=self._verification,
            stale=self._stale,
            last_scan=self._last_scan,
            last_scan_duration=self._last_scan_duration,
            scans=self._scans,
            scan_errors=self._scan_errors,
            corrections=self._corrections,
            version=self._version,
            settle=self.settle,
            writing=writing,
            tail=tuple(order[-(len(writing) + 1) :]) if writing else (),
            space=self._space,
            insecure=tuple(heapq.nsmallest(INSECURE_SHOWN, self._insecure.items())),
            insecure_count=len(self._insecure),
            envelope=self._envelope,
        )
