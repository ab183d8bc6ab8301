"""The state file: JSON, replaced atomically, never truncated in place.

Sections (alert records, undelivered notifications) are gathered from their
owners at each save. A corrupt or foreign file at start is moved aside.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.statefile import move_aside, write_atomic

log = logging.getLogger(__name__)

STATE_VERSION = 1
FILE_NAME = "state.json"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _AlertRecord(_Shape):
    status: Literal["ok", "pending", "firing"]
    since: float
    notified: bool
    last_fire_notice: float | None
    last_notice: float
    reason: str


class _Notification(_Shape):
    status: str
    target: str
    check: str
    title: str
    body: str
    tags: list[str]
    created_at: float
    id: str


class _Pending(_Shape):
    channel: str
    attempts: int = Field(ge=0)
    notification: _Notification


class _StateFile(_Shape):
    """The file's shape: a file of the right version but wrong shapes is moved aside too."""

    version: Literal[1]
    alerts: dict[str, _AlertRecord] = Field(default_factory=dict)
    outbox: list[_Pending] = Field(default_factory=list)


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
        try:
            _StateFile.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return self._move_aside(f"malformed ({where}: {first['msg']})")
        return data

    def _move_aside(self, why: str) -> dict[str, Any]:
        move_aside(self.path, why)
        return {}

    def save(self) -> bool:
        """Write every section; on failure keep the old file, count it and log once."""
        with self._lock:
            document = {"version": STATE_VERSION, "saved_at": time.time()}
            document.update({name: dump() for name, dump in self._sections.items()})
            try:
                write_atomic(self.path, json.dumps(document, indent=1, sort_keys=True))
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
