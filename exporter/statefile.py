"""Files in the state directory: written whole and atomically, never truncated in place;
a file that cannot be read back is moved aside, not deleted, so nothing is lost silently.
And the per-target records kept there (Record, RecordBook)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

S = TypeVar("S")  # a record's status: a frozen dataclass with a ``version`` field


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text``: a crash leaves the old file or the new, never half.

    The directory is created private (0700): state files may quote backup paths."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def move_aside(path: str, why: str) -> None:
    """Keep an unusable state file for a human to look at, out of the way of the next write."""
    aside = f"{path}.corrupt-{int(time.time())}"
    try:
        os.replace(path, aside)
        log.warning("state file %s is %s; moved aside to %s", path, why, aside)
    except OSError as exc:
        log.warning("state file %s is %s and cannot be moved: %s", path, why, exc)


class Record(Generic[S]):
    """One target's saved status (its job's runs, its restore drills): an immutable
    dataclass with a ``version``, replaced whole at every change, saved at once, and
    announced to the listeners (the evaluator wakes). Thread-safe.

    Subclasses give ``kind`` (for messages), ``empty`` and ``loaded`` (the status from a
    validated saved document), and change the status through ``_change``.
    """

    kind = "record"
    saved_when_new = False  # True: a record not found on disk is written at once

    def __init__(
        self,
        name: str,
        path: str | None,
        clock: Callable[[], float] = time.time,
        writable: bool = True,
    ) -> None:
        self.name = name
        self.path = path  # None: neither loaded nor saved
        self.clock = clock
        self.writable = writable  # False: a one-shot command reads the daemon's records
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._save_failing = False
        self._status = self._load()
        if self.saved_when_new and writable and path is not None and self._status.version == 0:
            self._change(lambda status: status)

    def empty(self) -> S:
        raise NotImplementedError

    def loaded(self, document: dict[str, Any]) -> S:
        """The status from a saved document; raises ValueError (or ValidationError) when
        it is not one."""
        raise NotImplementedError

    def _load(self) -> S:
        if self.path is None or not os.path.exists(self.path):
            return self.empty()
        try:
            with open(self.path, encoding="utf-8") as handle:
                document = json.load(handle)
            if not isinstance(document, dict) or document.get("version") != 1:
                raise ValueError("not version 1")
            return replace(self.loaded(document), version=1)  # type: ignore[type-var]
        except OSError as exc:  # not ours to read (another user's state): not damaged
            log.warning("cannot read the %s %s: %s", self.kind, self.path, exc.strerror or exc)
        except ValueError as exc:  # ValidationError included
            why = f"not a {self.kind} ({str(exc).splitlines()[0]})"
            if self.writable:
                move_aside(self.path, why)
            else:
                log.warning("%s %s is %s", self.kind, self.path, why)
        return self.empty()

    @property
    def status(self) -> S:
        return self._status

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def _change(self, edit: Callable[[S], S]) -> S:
        with self._lock:
            status = edit(self._status)
            status = replace(status, version=self._status.version + 1)  # type: ignore[attr-defined,type-var]
            self._status = status
            self._save(status)
        for listener in self._listeners:
            listener(self.name)
        return status

    def _save(self, status: S) -> None:
        if self.path is None or not self.writable:
            return
        # "version" in the file is the format's; the status's own counts changes in memory.
        document = {**asdict(status), "version": 1}  # type: ignore[call-overload]
        try:
            write_atomic(self.path, json.dumps(document, indent=1))
        except OSError as exc:
            if not self._save_failing:
                log.error("cannot save the %s %s: %s", self.kind, self.path, exc.strerror or exc)
            self._save_failing = True
            return
        if self._save_failing:
            log.info("%s %s is saved again", self.kind, self.path)
        self._save_failing = False


R = TypeVar("R", bound=Record[Any])


class RecordBook(Generic[R]):
    """The daemon's records of one kind by target name, in ``state_dir/<folder>/``; a
    record outlives reloads of its target."""

    def __init__(
        self,
        make: Callable[[str, str | None, Callable[[], float], bool], R],
        state_dir: str | None,
        folder: str,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str], None] | None = None,
        writable: bool = True,
    ) -> None:
        self.make = make
        self.directory = os.path.join(state_dir, folder) if state_dir else None
        self.clock = clock
        self.on_change = on_change
        self.writable = writable
        self._records: dict[str, R] = {}
        self._lock = threading.Lock()

    def record(self, name: str) -> R:
        """The record of ``name``, loaded from the state directory the first time."""
        with self._lock:
            found = self._records.get(name)
            if found is None:
                path = os.path.join(self.directory, f"{name}.json") if self.directory else None
                found = self.make(name, path, self.clock, self.writable)
                self._records[name] = found
                if self.on_change is not None:
                    found.subscribe(self.on_change)
            return found
