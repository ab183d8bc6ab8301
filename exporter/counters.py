"""The exporter's own counters that belong to no single target."""

from __future__ import annotations

import threading


class DaemonStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events = 0
        self._verifications = {"ok": 0, "failed": 0, "error": 0}

    def count_event(self) -> None:
        with self._lock:
            self._events += 1

    def count_verification(self, result: str) -> None:
        """ok, failed (the backup is broken) or error (it could not be verified)."""
        with self._lock:
            self._verifications[result] += 1

    @property
    def verifications(self) -> dict[str, int]:
        with self._lock:
            return dict(self._verifications)

    @property
    def events(self) -> int:
        with self._lock:
            return self._events
