"""The evaluator thread: checks -> one Evaluation per target -> alert state -> notifications.

It wakes when an index changes (indexes call ``wake``) and otherwise sleeps until the
earliest moment anything can change by itself: the newest backup crossing ``max_age``
(each result's ``next_change_at``), a ``for`` running out, a held alert's
``min_interval``, a ``repeat_interval``. A target's checks are computed again only when
its snapshot changed or such a moment came (``evaluate_target``), and the result is
published on the target for every reader. So an age breach with no file activity is
noticed within milliseconds of the deadline; a 30-second safety tick covers clock jumps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from exporter.alerting.messages import FIRING, Notification, render
from exporter.alerting.state import AlertState
from exporter.checks.table import REFRESH, evaluate_target
from exporter.config import NotifyConfig
from exporter.index import Clock
from exporter.loop import Loop
from exporter.target import Target

log = logging.getLogger(__name__)

SAFETY_TICK = 30.0
# Under an event storm, at most one evaluation per this many seconds (still on time).
MIN_GAP = 0.1
# Checks are strict (age > max_age), so wake just after a deadline, not on it.
DEADLINE_SLACK = 0.01


class Evaluator(Loop):
    def __init__(
        self,
        targets: Callable[[], Sequence[Target]],
        state: AlertState,
        notify: NotifyConfig,
        submit: Callable[[Notification], object],
        save: Callable[[], object],
        clock: Clock = time.time,
        on_round: Callable[[], object] | None = None,
    ) -> None:
        super().__init__("evaluator", SAFETY_TICK, min_gap=MIN_GAP)
        self.targets = targets
        self.state = state
        self.notify = notify
        self.submit = submit
        self.save = save
        self.clock = clock
        self.on_round = on_round  # after each round: the Alertmanager poster syncs
        self.rounds = 0
        self._lock = threading.Lock()
        self._check_errors: dict[tuple[str, str], int] = {}

    def _check_failed(self, target: str, check: str) -> None:
        with self._lock:
            self._check_errors[(target, check)] = self._check_errors.get((target, check), 0) + 1

    @property
    def check_errors(self) -> dict[tuple[str, str], int]:
        """(target, check) -> evaluations in which that check raised."""
        with self._lock:
            return dict(self._check_errors)

    def evaluate_once(self) -> float | None:
        """Evaluate every target; returns when the next evaluation is due by itself."""
        now = self.clock()
        moments: list[float] = []
        notices = []
        keep: set[tuple[str, str]] = set()
        for target in self.targets():
            snap = target.index.snapshot()
            if not snap.scanned:
                continue  # start-up grace: not judged before its first scan or listing
            # Computed again only where due; the state machine still sees every result,
            # since its own timers (for, repeat, min_interval) move with time.
            evaluation = evaluate_target(target, now, self._check_failed)
            snap = target.index.snapshot()
            if evaluation.next_change_at != float("inf"):
                moments.append(evaluation.next_change_at + DEADLINE_SLACK)
            moments.append(evaluation.at + REFRESH)
            for check, result in evaluation.results.items():
                keep.add((target.name, check))
                if not snap.up and check != "target_down":
                    continue  # a down target alerts once, as target_down; others hold
                for notice in self.state.update(
                    target.name, check, not result.ok, result.reason, now
                ):
                    notices.append((target, snap, notice, result.detail))
        self.state.retain(keep)
        for target, snap, notice, detail in notices:
            level = logging.WARNING if notice.status == FIRING else logging.INFO
            log.log(
                level, "%s %s/%s: %s", notice.status, notice.target, notice.check, notice.reason
            )
            message = render(
                self.notify,
                target.config,
                snap,
                notice.check,
                notice.status,
                notice.reason,
                notice.since,
                now,
                detail,
            )
            self.submit(message)
        if self.state.take_dirty():  # an unchanged state is not written again
            self.save()
        if self.on_round is not None:
            self.on_round()
        self.rounds += 1
        state_wake = self.state.next_wake()
        if state_wake is not None:
            moments.append(state_wake)
        return min(moments, default=None)

    def round(self) -> float:
        due = self.evaluate_once()
        return SAFETY_TICK if due is None else min(SAFETY_TICK, due - self.clock())

    def start(self, *, first_round_now: bool = True) -> None:
        # The first round here, so the first scrape already has every verdict.
        self.run_round()
        super().start(first_round_now=first_round_now)
