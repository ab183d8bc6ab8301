"""One verdict per target: the result of evaluating its checks, read by every reader.

The evaluator computes a target's ``Evaluation`` when its snapshot changes or when time
crosses the evaluation's ``next_change_at``, never at scrape time, and publishes it by
replacing ``target.evaluation`` (one reference assignment: readers see the old or the new
whole). The metrics collectors, the status document (API, page, ``status``), the alert
state machine and ``check`` all read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's verdict, why, and the figures it computed on the way.

    ``next_change_at``: the moment the result can change with no file activity (a
    deadline, a backup settling), so the evaluator sleeps until exactly then.
    ``figures``: metric suffix -> value (``missing_runs``, ``size_ratio``...), published
    as they are; ``since``: figures that are moments, published as seconds since them.
    ``detail``: what a human needs beyond the one-line reason (a failed job's output).
    """

    ok: bool
    reason: str
    next_change_at: float | None = None
    figures: Mapping[str, float] = field(default_factory=dict)
    since: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""  # more than the reason, for a notification's body (a job's output)


INTERNAL_ERROR = "internal error (see the log)"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Every applicable check's result for one snapshot of a target, at one moment."""

    key: tuple[int, ...]  # the versions it was computed from (snapshots, job record)
    at: float
    results: Mapping[str, CheckResult]
    errors: tuple[str, ...] = ()  # checks that raised: reported not ok, "internal error"

    @property
    def next_change_at(self) -> float:
        return min(
            (r.next_change_at for r in self.results.values() if r.next_change_at is not None),
            default=math.inf,
        )

    def due(self, key: tuple[int, ...], now: float) -> bool:
        """Whether it must be computed again: the snapshot moved, or time crossed a deadline."""
        return key != self.key or now >= self.next_change_at

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results.values())
