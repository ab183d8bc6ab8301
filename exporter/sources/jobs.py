"""A backup job's runs, as its pings, the ``run`` wrapper and its log report them.

Each target with ``job:`` has one JobRecord: the run in progress, the last finished run
and the last successful one (with their output tails), and the run counts. The daemon
keeps the records across reloads and each is saved in the state directory at every
change, so a restart neither forgets a failure nor ends a run in progress.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.statefile import move_aside, write_atomic

log = logging.getLogger(__name__)

# The most of a run's output (its tail) that is kept, in bytes of UTF-8.
TAIL_KEPT = 100 * 1024


def keep_tail(data: bytes, limit: int = TAIL_KEPT) -> str:
    """The end of a run's output as text: its last ``limit`` bytes, invalid UTF-8 replaced."""
    return data[-limit:].decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class JobRun:
    """One finished run. ``started_at`` is None when no start was reported."""

    started_at: float | None
    ended_at: float
    exit_code: int  # 0: success
    tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def duration(self) -> float | None:
        return None if self.started_at is None else max(0.0, self.ended_at - self.started_at)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What is known of a target's job at one moment; replaced whole at every change."""

    version: int = 0
    running_since: float | None = None
    last: JobRun | None = None
    last_success: JobRun | None = None
    successes: int = 0
    failures: int = 0


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Run(_Shape):
    started_at: float | None
    ended_at: float
    exit_code: int = Field(ge=0, le=255)
    tail: str = Field(max_length=TAIL_KEPT)


class _RecordFile(_Shape):
    version: int
    running_since: float | None = None
    last: _Run | None = None
    last_success: _Run | None = None
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)


def _run_of(shape: _Run | None) -> JobRun | None:
    return None if shape is None else JobRun(**shape.model_dump())


Listener = Callable[[str], None]


class JobRecord:
    """The run records of one target's job. Thread-safe; every change is saved and
    announced to the listeners (the evaluator wakes)."""

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
        self.writable = writable  # False: the one-shot `check` reads the daemon's records
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._save_failing = False
        self._status = self._load()

    def _load(self) -> JobStatus:
        if self.path is None or not os.path.exists(self.path):
            return JobStatus()
        try:
            with open(self.path, encoding="utf-8") as handle:
                shape = _RecordFile.model_validate(json.load(handle))
        except OSError as exc:  # not ours to read (another user's state): not damaged
            log.warning("cannot read the job record %s: %s", self.path, exc.strerror or exc)
            return JobStatus()
        except (ValueError, ValidationError) as exc:
            why = f"not a job record ({str(exc).splitlines()[0]})"
            if self.writable:
                move_aside(self.path, why)
            else:
                log.warning("job record %s is %s", self.path, why)
            return JobStatus()
        return JobStatus(
            version=1,
            running_since=shape.running_since,
            last=_run_of(shape.last),
            last_success=_run_of(shape.last_success),
            successes=shape.successes,
            failures=shape.failures,
        )

    @property
    def status(self) -> JobStatus:
        return self._status

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self, at: float | None = None) -> JobStatus:
        """A run started (a start ping, the wrapper, a log line). A run still in progress
        is superseded: a job that starts again is no longer running the old run."""
        at = self.clock() if at is None else at
        return self._change(lambda s: replace(s, running_since=at))

    def finish(
        self,
        exit_code: int,
        tail: str = "",
        duration: float | None = None,
        at: float | None = None,
    ) -> JobStatus:
        """A run ended with ``exit_code``; its start is the reported one, else ``at`` minus
        the ``duration`` the wrapper measured, else unknown."""
        at = self.clock() if at is None else at

        def edit(status: JobStatus) -> JobStatus:
            started = status.running_since
            if duration is not None:
                started = at - duration
            run = JobRun(started, at, exit_code, tail[-TAIL_KEPT:])
            if run.ok:
                return replace(
                    status,
                    running_since=None,
                    last=run,
                    last_success=run,
                    successes=status.successes + 1,
                )
            return replace(status, running_since=None, last=run, failures=status.failures + 1)

        return self._change(edit)

    def _change(self, edit: Callable[[JobStatus], JobStatus]) -> JobStatus:
        with self._lock:
            status = edit(self._status)
            status = replace(status, version=self._status.version + 1)
            self._status = status
            self._save(status)
        for listener in self._listeners:
            listener(self.name)
        return status

    def _save(self, status: JobStatus) -> None:
        if self.path is None or not self.writable:
            return
        document = {k: v for k, v in asdict(status).items() if k != "version"}
        try:
            write_atomic(self.path, json.dumps({"version": 1, **document}, indent=1))
        except OSError as exc:
            if not self._save_failing:
                log.error("cannot save the job record %s: %s", self.path, exc.strerror or exc)
            self._save_failing = True
            return
        if self._save_failing:
            log.info("job record %s is saved again", self.path)
        self._save_failing = False


class JobBook:
    """The daemon's job records by target name; a record outlives reloads of its target."""

    def __init__(
        self,
        state_dir: str | None,
        clock: Callable[[], float] = time.time,
        on_change: Listener | None = None,
        writable: bool = True,
    ) -> None:
        self.directory = os.path.join(state_dir, "jobs") if state_dir else None
        self.clock = clock
        self.on_change = on_change
        self.writable = writable
        self._records: dict[str, JobRecord] = {}
        self._lock = threading.Lock()

    def record(self, name: str) -> JobRecord:
        """The record of ``name``'s job, loaded from the state directory the first time."""
        with self._lock:
            found = self._records.get(name)
            if found is None:
                path = os.path.join(self.directory, f"{name}.json") if self.directory else None
                found = JobRecord(name, path, self.clock, self.writable)
                self._records[name] = found
                if self.on_change is not None:
                    found.subscribe(self.on_change)
            return found
