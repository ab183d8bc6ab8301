"""A backup job's runs, as its pings, the ``run`` wrapper and its log report them.

Each target with ``job:`` has one JobRecord: the run in progress, the last finished run
and the last successful one (with their output tails), and the run counts. The daemon
keeps the records across reloads and each is saved in the state directory at every
change, so a restart neither forgets a failure nor ends a run in progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from exporter.statefile import Record, RecordBook

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
    running_since: float | None = None
    last: _Run | None = None
    last_success: _Run | None = None
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)


def _run_of(shape: _Run | None) -> JobRun | None:
    return None if shape is None else JobRun(**shape.model_dump())


class JobRecord(Record[JobStatus]):
    """The run records of one target's job, saved at every change."""

    kind = "job record"

    def empty(self) -> JobStatus:
        return JobStatus()

    def loaded(self, document: dict[str, Any]) -> JobStatus:
        shape = _RecordFile.model_validate(document)
        return JobStatus(
            running_since=shape.running_since,
            last=_run_of(shape.last),
            last_success=_run_of(shape.last_success),
            successes=shape.successes,
            failures=shape.failures,
        )

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


def job_book(
    state_dir: str | None,
    clock: Callable[[], float] = time.time,
    on_change: Callable[[str], None] | None = None,
    writable: bool = True,
) -> RecordBook[JobRecord]:
    """The daemon's job records by target name, in ``state_dir/jobs/``."""
    return RecordBook(JobRecord, state_dir, "jobs", clock, on_change, writable)
