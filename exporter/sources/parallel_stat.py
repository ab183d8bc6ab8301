"""Stat the names a listing finds, shared with a helper process when there are many.

CPython spends about half of each ``os.stat`` building the result object with
the GIL held, so threads cannot share this work (measured: two threads take
longer than one). A process can. Once a listing has found many names, a
helper (``stathelper``) is started and fed the names as they are found; it
stats them from the first one on, while the listing goes on here. When the
listing ends this process stats from the last name backwards and stops where
the two meet: whichever is faster does more, with no share to guess. On two
cores this brings the first scan of 100,000 files under the time of
``find | sort``. A helper that cannot start or dies only costs time: this
process then does the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import sys
from collections.abc import Iterable

from exporter.index import FileMap
from exporter.sources import stat_helper as stathelper

log = logging.getLogger(__name__)

Records = Iterable[stathelper.Record]
# name -> link value (stathelper.SYMLINK, or the inode of a hard-linked file)
Links = dict[str, int]

# Below this many names a helper costs more (about 20 ms to start) than it saves.
MIN_SHARED = 5_000
BIG_DIRECTORY = 128 << 10  # bytes of directory entries
# What os.fsencode does, for many names in one call.
FS_CODEC = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
# Bigger pipes (Linux) let both sides run longer without waiting on each other.
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1 << 20


def merge(
    files: FileMap,
    links: Links,
    unreadable: list[str],
    names: list[str],
    records: Records,
    offset: int = 0,
) -> None:
    for i, size, mtime, link in records:
        name = names[offset + i]
        if size == stathelper.UNREADABLE:
            unreadable.append(name)
            continue
        files[name] = (size, mtime)
        if link:
            links[name] = link


def _big_directory(dir_fd: int) -> bool:
    """Whether a directory surely holds thousands of names: ext4, XFS, btrfs and tmpfs all
    grow a directory's size with its entries (ext4 needs about 5,000 names for this)."""
    try:
        return os.fstat(dir_fd).st_size >= BIG_DIRECTORY
    except OSError:
        return False


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Helper:
    """A running helper: ``done`` is how many names, from the first, it has reported."""

    start_failed = False

    def __init__(self, dir_fd: int, names: list[str]) -> None:
        self.names = names  # the caller's list, which grows as the listing goes on
        self.done = 0
        self._sent = 0
        self._outgoing = bytearray()
        self._incoming = bytearray()
        self._closing = False
        self._process: subprocess.Popen[bytes] | None = None
        script = stathelper.__file__
        if not sys.executable or not os.path.isfile(script):
            return  # frozen or embedded interpreter: no helper to run
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", script, str(dir_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(dir_fd,),
            )
        except OSError as exc:
            # Once per process: a sandbox that forbids it would otherwise repeat it every rescan.
            level = logging.DEBUG if Helper.start_failed else logging.WARNING
            Helper.start_failed = True
            log.log(level, "cannot start a stat helper (%s); statting in this process", exc)
            return
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        for pipe in (self._stdin, self._stdout):
            os.set_blocking(pipe.fileno(), False)
            # Not Linux, or above the system's limit: the default size works too.
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)

    @property
    def running(self) -> bool:
        return self._process is not None

    def end_input(self) -> None:
        """No more names will come."""
        self._closing = True

    def pump(self, files: FileMap, links: Links, unreadable: list[str]) -> None:
        """Send the names not sent yet and take the results there are, without waiting."""
        if self._process is None:
            return
        self._send()
        self._receive(files, links, unreadable)

    def _send(self) -> None:
        if self._stdin.closed:
            return
        if self._sent < len(self.names):
            # Names never hold a NUL, so NUL ends each one.
            batch = self.names[self._sent :]
            self._outgoing += ("\0".join(batch) + "\0").encode(*FS_CODEC)
            self._sent = len(self.names)
        try:
            while self._outgoing:
                del self._outgoing[: os.write(self._stdin.fileno(), self._outgoing)]
        except BlockingIOError:
            return  # the pipe is full: the rest goes at the next pump
        except BrokenPipeError:
            self._outgoing.clear()  # the helper died: its results so far still count
        if self._closing:
            self._stdin.close()

    def _receive(self, files: FileMap, links: Links, unreadable: list[str]) -> None:
        while True:
            try:
                data = os.read(self._stdout.fileno(), PIPE_SIZE)
            except BlockingIOError:
                break
            if not data:  # finished or died: what it reported stands, this process does the rest
                if self._process.poll():
                    log.debug("stat helper exited with %s", self._process.returncode)
                self.stop()
                break
            self._incoming += data
        for done, records in stathelper.decode_blocks(self._incoming):
            merge(files, links, unreadable, self.names, records)
            self.done = done

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in a stat on a hung mount; reaped later
            log.warning("stat helper %d did not exit after SIGKILL", process.pid)


class StatMany:
    """Names added while a listing goes on; ``finish()`` stats them all.

    ``shared`` forces a helper on or off; by default one helps once there are
    many names, on a machine with more than one core.
    """

    def __init__(self, dir_fd: int, shared: bool | None = None) -> None:
        self.dir_fd = dir_fd
        self.names: list[str] = []
        self.files: FileMap = {}
        self.links: Links = {}
        self.unreadable: list[str] = []  # names (files or directories) that could not be read
        self._shared = _cpus() > 1 if shared is None else shared
        self._threshold = MIN_SHARED if shared is None else 0
        self._helper: Helper | None = None
        self._pumped = 0
        if shared is None and self._shared and _big_directory(dir_fd):
            # Start now: the helper's start-up then overlaps the listing.
            self._helper = Helper(dir_fd, self.names)

    def add(self, names: Iterable[str]) -> None:
        self.names += names
        if self._helper is None and self._shared and len(self.names) >= self._threshold:
            self._helper = Helper(self.dir_fd, self.names)
        # Pumping once per chunk of new names keeps the helper busy at a fraction of the cost.
        if self._helper is not None and len(self.names) - self._pumped >= stathelper.CHUNK:
            self._helper.pump(self.files, self.links, self.unreadable)
            self._pumped = len(self.names)

    def finish(self) -> FileMap:
        """{name: (size, mtime)} of the regular files among the names (links in ``links``)."""
        helper, names, files, links = self._helper, self.names, self.files, self.links
        if helper is not None:
            helper.end_input()
        end = len(names)
        try:
            while end > (met := helper.done if helper else 0):
                start = max(end - stathelper.CHUNK, met)
                records = stathelper.stat_regular(self.dir_fd, names[start:end])
                merge(files, links, self.unreadable, names, records, start)
                end = start
                if helper is not None:
                    helper.pump(files, links, self.unreadable)
        finally:
            if helper is not None:
                helper.stop()
        return files


def stat_many(dir_fd: int, names: Iterable[str], shared: bool | None = None) -> FileMap:
    """{name: (size, mtime)} of the regular files among ``names`` (relative to ``dir_fd``)."""
    batch = StatMany(dir_fd, shared)
    batch.add(names)
    return batch.finish()
