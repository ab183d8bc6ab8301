"""Stat many names of one directory tree, shared with a helper process when there are many.

CPython spends about half of each ``os.stat`` building the result object with
the GIL held, so threads cannot share this work (measured: two threads take
longer than one). A process can. This process stats the names from the first
one forwards while a helper (``stathelper``) stats them from the last one
backwards, and this one stops where they meet: whichever is faster does more,
with no share to guess. On two cores that halves the time of the stat calls
of a 100,000-file directory, which brings the daemon's first scan under the
time of ``find | sort``. A helper that cannot start or dies only costs time:
this process then does the rest.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable

from exporter import stathelper

log = logging.getLogger(__name__)

Stats = dict[str, tuple[int, float]]

# Below this many names a helper costs more (about 20 ms to start) than it saves.
MIN_SHARED = 5_000
# What os.fsencode does, for all the names in one call.
FS_CODEC = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def merge(files: Stats, names: list[str], records: Iterable[tuple[int, int, float]]) -> None:
    files.update((names[i], (size, mtime)) for i, size, mtime in records)


class Helper:
    """A running helper and what it has reported: it has done every name from ``low`` on."""

    def __init__(self, dir_fd: int, names: list[str]) -> None:
        self.names = names
        self.low = len(names)
        self._pending = bytearray()
        self._process: subprocess.Popen[bytes] | None = None
        script = stathelper.__file__
        if not sys.executable or not os.path.isfile(script):
            return  # frozen or embedded interpreter: no helper to run
        # A temporary file, not a pipe, carries the names: writing never waits on the helper.
        with tempfile.TemporaryFile() as feed:
            feed.write("\0".join(names).encode(*FS_CODEC))
            feed.seek(0)
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-I", "-S", script, str(dir_fd)],
                    stdin=feed,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(dir_fd,),
                )
            except OSError as exc:
                log.warning("cannot start a stat helper (%s); statting in this process", exc)
                return
        assert self._process.stdout is not None
        self._fd = self._process.stdout.fileno()
        os.set_blocking(self._fd, False)

    @property
    def running(self) -> bool:
        return self._process is not None

    def poll(self, files: Stats) -> None:
        """Take what the helper has written so far, without waiting."""
        if self._process is None:
            return
        while True:
            try:
                data = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                break
            if not data:  # finished or died: what it reported stands, this process does the rest
                self._process.wait()
                self._process = None
                break
            self._pending += data
        for low, records in stathelper.decode_blocks(self._pending):
            merge(files, self.names, records)
            self.low = low

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        self._process.stdout.close()  # type: ignore[union-attr]
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in a stat of a hung mount; reaped later
            log.warning("stat helper %d did not exit after SIGKILL", self._process.pid)


def stat_many(dir_fd: int, names: list[str], shared: bool | None = None) -> Stats:
    """{name: (size, mtime)} of the regular files among ``names`` (relative to ``dir_fd``).

    ``shared`` forces a helper on or off; by default one helps with many names on
    a machine with more than one core.
    """
    if shared is None:
        shared = len(names) >= MIN_SHARED and _cpus() > 1
    files: Stats = {}
    if not shared:
        merge(files, names, stathelper.stat_regular(dir_fd, names))
        return files
    helper = Helper(dir_fd, names)
    done = 0
    try:
        while done < helper.low:
            chunk = names[done : min(done + stathelper.CHUNK, helper.low)]
            merge(files, chunk, stathelper.stat_regular(dir_fd, chunk))
            done += len(chunk)
            helper.poll(files)
    finally:
        helper.stop()
    return files
