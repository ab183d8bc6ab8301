"""Following a backup job's log (``job.log``), like ``tail -F``: new lines only, through
rotation by rename (the old file is read to its end first) and by copytruncate (a file
that got shorter is read again from its start). A line matching ``failure``, ``success``
or ``start`` becomes a run record, dated when it was read; the lines between a start and
an end are the run's output.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import BinaryIO

from exporter.config import JobLogConfig
from exporter.loop import Loop
from exporter.sources.jobs import JobRecord
from exporter.sources.listing import open_regular
from exporter.target import Target

log = logging.getLogger(__name__)

POLL = 0.5  # a failure line reaches the record within this (one stat per log per round)
READ_MAX = 1024**2  # per log and round: a burst is read over several rounds
LINE_MAX = 64 * 1024  # a longer line is cut here
OUTPUT_KEPT = 10 * 1024  # the output kept per run, like the run wrapper's tail


class LogFollow:
    """One log file followed for one target's job."""

    def __init__(self, config: JobLogConfig, record: JobRecord) -> None:
        self.config = config
        self.record = record
        self.success = re.compile(config.success) if config.success else None
        self.failure = re.compile(config.failure) if config.failure else None
        self.start = re.compile(config.start) if config.start else None
        self.handle: BinaryIO | None = None
        self.fd: int | None = None
        self.ident: tuple[int, int] | None = None
        self.offset = 0
        self.partial = b""
        self.output: deque[str] = deque()
        self.output_size = 0
        self.at_start = True  # the first open reads new lines only
        self.problem = ""

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.handle, self.fd, self.ident = None, None, None

    def poll(self) -> None:
        try:
            current = os.stat(self.config.path)
        except OSError:
            current = None  # rotated away and not created again yet: drain the old one
            self.at_start = False  # once it appears, every line of it is new
        if self.fd is not None and current is not None:
            if (current.st_dev, current.st_ino) != self.ident:
                self._read()  # what was written to the old file before the rename
                self.close()
            elif os.fstat(self.fd).st_size < self.offset:
                self.offset, self.partial = 0, b""  # copytruncate
        if self.fd is None and current is not None:
            self._open()
        if self.fd is not None:
            self._read()

    def _open(self) -> None:
        try:
            handle = open_regular(self.config.path)  # a FIFO would block the thread
        except OSError as exc:
            self._report(f"cannot open {self.config.path}: {exc.strerror or exc}")
            return
        self.handle, self.fd = handle, handle.fileno()
        info = os.fstat(self.fd)
        self.ident = (info.st_dev, info.st_ino)
        # A log there when following begins is old news; one created later is all new.
        self.offset = info.st_size if self.at_start else 0
        self.at_start, self.partial = False, b""
        if self.problem:
            log.info("job log %s can be read again", self.config.path)
            self.problem = ""

    def _report(self, problem: str) -> None:
        if problem != self.problem:
            log.warning("job log of target %s: %s", self.record.name, problem)
        self.problem = problem
        self.at_start = False  # once it appears, every line of it is new

    def _read(self) -> None:
        assert self.fd is not None
        data = os.pread(self.fd, READ_MAX, self.offset)
        if not data:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        if len(self.partial) > LINE_MAX:  # a line without end: judge what there is
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            self._line(raw[:LINE_MAX].decode("utf-8", errors="replace").rstrip("\r"))

    def _line(self, line: str) -> None:
        if self.failure is not None and (found := self.failure.search(line)):
            code = found.groupdict().get("code")
            status = int(code) if code and code.isascii() and code.isdigit() else 1
            self._keep(line)
            self.record.finish(min(255, max(1, status)), self._take())
        elif self.success is not None and self.success.search(line):
            self._keep(line)
            self.record.finish(0, self._take())
        elif self.start is not None and self.start.search(line):
            self._take()
            self.record.start()
            self._keep(line)
        else:
            self._keep(line)

    def _keep(self, line: str) -> None:
        self.output.append(line)
        self.output_size += len(line) + 1
        while self.output_size > OUTPUT_KEPT and len(self.output) > 1:
            self.output_size -= len(self.output.popleft()) + 1

    def _take(self) -> str:
        text = "\n".join(self.output)
        self.output.clear()
        self.output_size = 0
        return text


class LogFollower(Loop):
    """Follows the logs of every target with ``job.log``, on one thread."""

    def __init__(self, targets: Callable[[], Sequence[Target]]) -> None:
        super().__init__("job-logs", POLL)
        self.targets = targets
        self._follows: dict[str, LogFollow] = {}

    def round(self) -> float | None:
        if not self._follows and not any(t.job is not None for t in self.targets()):
            return None  # no target has a job: nothing to follow
        wanted = {
            t.name: (t.config.job.log, t.job)
            for t in self.targets()
            if t.job is not None and t.config.job is not None and t.config.job.log is not None
        }
        for name, follow in list(self._follows.items()):
            if name not in wanted or wanted[name] != (follow.config, follow.record):
                follow.close()
                del self._follows[name]
        for name, (config, record) in wanted.items():
            if name not in self._follows:
                self._follows[name] = LogFollow(config, record)
        for follow in self._follows.values():
            follow.poll()
        return None

    def start(self, *, first_round_now: bool = True) -> None:
        # Positioned at the logs' ends before the daemon counts as started: a line written
        # right after start is a new line, never skipped as old news.
        self.run_round()
        super().start(first_round_now=False)

    def stop(self, timeout: float = 2.0) -> None:
        super().stop(timeout)
        for follow in self._follows.values():
            follow.close()
        self._follows.clear()
