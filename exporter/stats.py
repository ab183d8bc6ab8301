"""The exporter's own counters that belong to no single target."""

from __future__ import annotations

import threading

WATCH_MODES = ("inotify", "polling")


class DaemonStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events = 0
        self._watch_mode = "inotify"
        self._verifications = {"ok": 0, "failed": 0}

    def count_event(self) -> None:
        with self._lock:
            self._events += 1

    def set_watch_mode(self, mode: str) -> None:
        with self._lock:
            self._watch_mode = mode

    def count_verification(self, ok: bool) -> None:
        with self._lock:
            self._verifications["ok" if ok else "failed"] += 1

    @property
    def verifications(self) -> dict[str, int]:
        with self._lock:
            return dict(self._verifications)

    @property
    def events(self) -> int:
        with self._lock:
            return self._events

    @property
    def watch_mode(self) -> str:
        with self._lock:
            return self._watch_mode
