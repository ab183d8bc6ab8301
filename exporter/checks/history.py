"""Figures derived from a target's whole history: gaps, size ratio, retention.

Pure functions over a snapshot's ``history`` (entries (timestamp, name, size),
oldest first), shared by the collector (which publishes them) and the checks
(which judge them), so both always agree.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Sequence

from exporter.index import BackupFile, Entry, TargetSnapshot
from exporter.schedule import Schedule

# How many recent spacings give an inferred interval, and how many backups it needs.
INFER_SAMPLES = 10
INFER_MIN_BACKUPS = 4


def inferred_interval(history: Sequence[Entry]) -> float | None:
    """The median spacing of the latest backups, or None with too few."""
    if len(history) < INFER_MIN_BACKUPS:
        return None
    recent = [e[0] for e in history[-(INFER_SAMPLES + 1) :]]
    spacing = statistics.median(b - a for a, b in itertools.pairwise(recent))
    return spacing if spacing > 0 else None


def missing_runs(
    history: Sequence[Entry], schedule: Schedule | None, window: float, now: float
) -> list[float]:
    """Expected run times inside the series (oldest backup .. newest) with no backup.

    Runs after the newest backup are the schedule or age check's business, not a gap.
    """
    if not history:
        return []
    stamps = [e[0] for e in history]
    start = max(now - window, stamps[0])
    newest = stamps[-1]
    if schedule is not None:
        runs = schedule.runs_between(schedule.latest_at_or_before(start), newest)
        missing = []
        for run, following in zip(runs, [*runs[1:], float("inf")], strict=True):
            first = bisect.bisect_left(stamps, run)
            if (first == len(stamps) or stamps[first] >= following) and run >= start - 1:
                missing.append(run)
        return missing
    interval = inferred_interval(history)
    if interval is None:
        return []
    missing = []
    inside = stamps[bisect.bisect_left(stamps, start) :]
    for before, after in itertools.pairwise(inside):
        skipped = round((after - before) / interval) - 1
        missing.extend(before + interval * k for k in range(1, skipped + 1))
    return missing


_COMPRESSION = (".gz", ".xz", ".bz2", ".zst", ".zstd", ".lz4", ".zip", ".7z")


def _compression(name: str) -> str:
    return next((s for s in _COMPRESSION if name.lower().endswith(s)), "")


def position(history: Sequence[Entry], name: str) -> int | None:
    """Where a backup near the newest end stands in the history (searched from the end)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index][1] == name:
            return index
    return None


def size_ratio(
    history: Sequence[Entry], samples: int, end: int | None = None
) -> tuple[float, float] | None:
    """(size of the backup at ``end`` (default: the newest) / median of the ``samples``
    before it, that median), or None.

    Only backups compressed the same way are compared: a .db.gz among .db files is
    smaller by design, not because it lost data.
    """
    end = len(history) - 1 if end is None else end
    if end < 1 or samples < 1:
        return None
    kind = _compression(history[end][1])
    previous: list[int] = []
    # From the newest backwards, so a scrape costs O(samples), not O(all backups).
    for index in range(end - 1, -1, -1):
        _ts, name, size = history[index]
        if _compression(name) == kind:
            previous.append(size)
            if len(previous) == samples:
                break
    if not previous:
        return None
    median = statistics.median(previous)
    if median <= 0:
        return None
    return history[end][2] / median, median


def settled_size_ratio(
    snap: TargetSnapshot, samples: int, now: float
) -> tuple[BackupFile, tuple[float, float] | None] | None:
    """The newest complete backup and its size ratio (None: no complete backup)."""
    newest = snap.settled_newest(now)
    if newest is None:
        return None
    end = position(snap.history, newest.name) if snap.history else None
    return newest, size_ratio(snap.history, samples, end) if end is not None else None


def retention_violations(
    history: Sequence[Entry], retention: float, grace: float, now: float
) -> int:
    """Backups older than retention (plus grace for the pruning job) still present."""
    return bisect.bisect_left(history, (now - retention - grace,))


def mirror_copy(snap: TargetSnapshot, original: BackupFile) -> bool:
    """Whether a mirror's snapshot holds ``original`` (same name and size), searched from
    its newest end, where a fresh copy is."""
    found = position(snap.history, original.name)
    return found is not None and snap.history[found][2] == original.size
