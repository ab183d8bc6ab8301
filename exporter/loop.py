"""Loop: the one way a background thread runs here.

Every loop of the daemon (supervisor, evaluator, verifier, pollers, heartbeat) is a
``Loop``: ``round()`` does one round of work and returns how long to sleep before the
next (None: the loop's ``interval``); ``wake()`` cuts the sleep short; ``stop()`` ends it
within a round. A round that raises is logged once, the loop goes on, and its recovery is
logged too, so one bad round can neither kill the thread nor flood the log.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class Loop:
    def __init__(self, name: str, interval: float, *, min_gap: float = 0.0) -> None:
        self.name = name
        self.interval = interval
        self.min_gap = min_gap  # at least this long between rounds (an event storm: one round)
        self.failing = False
        self.last_success = 0.0  # time.monotonic() of the last round that succeeded
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> float | None:
        """One round of work; returns the seconds until the next (None: ``interval``)."""
        raise NotImplementedError

    def start(self, *, first_round_now: bool = True) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(first_round_now,), name=self.name, daemon=True
        )
        self._thread.start()

    def wake(self, *_reason: object) -> None:
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_round(self) -> float | None:
        """``round()``, logging a failure once and the recovery after it."""
        try:
            delay = self.round()
        except Exception:  # the loop must outlive any one bad round
            if not self.failing:
                log.exception("%s: round failed; retrying every %ss", self.name, self.interval)
            self.failing = True
            return None
        if self.failing:
            log.info("%s: rounds succeed again", self.name)
        self.failing = False
        self.last_success = time.monotonic()
        return delay

    def _run(self, first_round_now: bool) -> None:
        delay: float | None = 0.0 if first_round_now else None
        while not self._stopping.is_set():
            wait = self.interval if delay is None else max(0.0, delay)
            if self.min_gap and self._stopping.wait(self.min_gap):
                return
            self._wake.wait(max(0.0, wait - self.min_gap))
            self._wake.clear()
            if self._stopping.is_set():
                return
            delay = self.run_round()
