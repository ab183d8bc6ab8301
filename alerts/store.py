"""The state file: JSON, replaced atomically, never truncated in place.

Sections (alert records, undelivered notifications) are gathered from their
owners at each save. A corrupt or foreign file at start is moved aside.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STATE_VERSION = 1
FILE_NAME = "state.json"


class StateStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self._sections: dict[str, Callable[[], Any]] = {}
        self._lock = threading.Lock()
        self._failing = False
        self.write_errors = 0

    def register(self, name: str, dump: Callable[[], Any]) -> None:
        self._sections[name] = dump

    def load(self) -> dict[str, Any]:
        """The saved sections, or {} when there is no usable file."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            return self._move_aside(f"unreadable ({exc})")
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return self._move_aside("not a backup-monitor state file")
        return data

    def _move_aside(self, why: str) -> dict[str, Any]:
        aside = f"{self.path}.corrupt-{int(time.time())}"
        try:
            os.replace(self.path, aside)
            log.warning("state file %s is %s; moved aside to %s", self.path, why, aside)
        except OSError as exc:
            log.warning("state file %s is %s and cannot be moved: %s", self.path, why, exc)
        return {}

    def save(self) -> bool:
        """Write every section; on failure keep the old file, count it and log once."""
        with self._lock:
            document = {"version": STATE_VERSION, "saved_at": time.time()}
            document.update({name: dump() for name, dump in self._sections.items()})
            try:
                self._write(json.dumps(document, indent=1, sort_keys=True))
            except OSError as exc:
                self.write_errors += 1
                if not self._failing:
                    log.error("cannot write state file %s: %s", self.path, exc.strerror or exc)
                self._failing = True
                return False
            if self._failing:
                log.info("state file %s is writable again", self.path)
            self._failing = False
            return True

    def _write(self, text: str) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
