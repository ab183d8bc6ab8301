"""Cron schedules: when the next backup is expected, and its deadline (run time + grace).

The rule: the first scheduled run strictly after the newest backup is the one the
next backup answers; its deadline is that run plus ``grace``. So a backup made
before a run never satisfies it, and a nightly 02:00 job with 1 h grace is late
at 03:00 sharp. With no backup at all, the latest run so far is the one expected.
"""

from __future__ import annotations

import bisect
import os
import threading
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# Bounds the work of counting runs in a window (a minutely schedule over 30 days).
MAX_RUNS = 5000


def resolve_zone(name: str | None) -> tzinfo:
    """The named zone, or the machine's local zone with its DST rules when known."""
    if name:
        return ZoneInfo(name)
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            candidates.append(handle.read().strip())
    except OSError:
        pass
    link = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in link:
        candidates.append(link.split("zoneinfo/", 1)[1])
    for candidate in candidates:
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


class Schedule:
    """A cron expression in a time zone, with the run times it has computed cached.

    ``runs_between`` serves a month of nightly runs from a sorted list extended at
    either end as windows move, so a history check does not walk croniter from scratch
    at every evaluation (5 ms a month of runs, times hundreds of targets).
    """

    def __init__(self, expression: str, zone: tzinfo, grace: float) -> None:
        self.expression = expression
        self.zone = zone
        self.grace = grace
        self._lock = threading.Lock()
        self._runs: list[float] = []  # every run in [_low, _high], oldest first
        self._low = self._high = 0.0

    def _iter(self, ts: float) -> croniter:
        return croniter(self.expression, datetime.fromtimestamp(ts, self.zone))

    def next_after(self, ts: float) -> float:
        return self._iter(ts).get_next(datetime).timestamp()

    def latest_at_or_before(self, ts: float) -> float:
        return self._iter(ts + 1e-3).get_prev(datetime).timestamp()

    def expected(self, newest: float | None, now: float) -> tuple[float, float]:
        """(run the next backup answers, its deadline)."""
        run = self.next_after(newest) if newest is not None else self.latest_at_or_before(now)
        return run, run + self.grace

    def _walk(self, start: float, end: float, limit: int) -> list[float]:
        """Runs in [start, end] from croniter, oldest first, at most ``limit``."""
        it = self._iter(start - 1e-3)
        runs: list[float] = []
        while len(runs) < limit:
            run = it.get_next(datetime).timestamp()
            if run > end:
                break
            runs.append(run)
        return runs

    def runs_between(self, start: float, end: float) -> list[float]:
        """Scheduled runs in [start, end], oldest first (at most the first MAX_RUNS)."""
        with self._lock:
            if not self._runs or start > self._high or end < self._low:
                self._runs = self._walk(start, end, MAX_RUNS)
                self._low, self._high = start, end
            else:
                if start < self._low:
                    self._runs[:0] = self._walk(start, self._low - 1e-3, MAX_RUNS)
                    self._low = start
                if end > self._high:
                    self._runs += self._walk(self._high + 1e-3, end, MAX_RUNS)
                    self._high = end
                if len(self._runs) > 2 * MAX_RUNS:  # keep the cache to the recent past
                    self._runs = self._runs[bisect.bisect_left(self._runs, start) :]
                    self._low = start
            first = bisect.bisect_left(self._runs, start)
            last = bisect.bisect_right(self._runs, end)
            return self._runs[first : min(last, first + MAX_RUNS)]
