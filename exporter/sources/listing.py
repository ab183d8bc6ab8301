"""One full scan of a target directory: list the names, then stat the backups among them.

Only the root's failure fails a scan (the target is then down); a file that
vanishes, a sub-directory that cannot be read or a name that is not UTF-8
is skipped or kept as it is, never fatal. Symlinked directories are not
followed, so a symlink loop cannot recurse.

Aliases are not backups: a symlink to a file that the target counts itself (a
``backup-latest.db`` pointing at the newest backup) is left out, and of several
hard links to one file only the first name in sort order counts. A symlink to a
file outside the target counts as that file.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from stat import S_ISLNK, S_ISREG
from typing import BinaryIO

from exporter.index import FileMap
from exporter.sources.matcher import Matcher
from exporter.sources.parallel_stat import Links, StatMany
from exporter.sources.stat_helper import SYMLINK

log = logging.getLogger(__name__)


class TargetUnavailable(Exception):
    """The target's root cannot be listed; the message says why, in a few words."""


def describe_os_error(exc: OSError) -> str:
    reasons = {
        errno.ENOENT: "directory does not exist",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "not a directory",
        errno.ELOOP: "too many levels of symbolic links",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class NotRegular(OSError):
    """A path that is not a regular file (it is never opened for reading)."""


def open_regular(path: str) -> BinaryIO:
    """Open a regular file for reading, never blocking: a FIFO, device, socket or
    directory (or a symlink to one) raises NotRegular instead of being read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(f"{_kind_of(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def stat_backup(path: str) -> tuple[int, float, int] | None:
    """(size, mtime, link) of a regular file (symlinks followed), or None.

    ``link`` as in ``stathelper.stat_regular``: 0, SYMLINK, or a hard-linked file's inode.
    """
    try:
        st = os.stat(path, follow_symlinks=False)
        link = st.st_ino if st.st_nlink > 1 else 0
        if S_ISLNK(st.st_mode):
            st, link = os.stat(path), SYMLINK
    except (OSError, ValueError):
        return None
    if not S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime, link


def is_symlink_alias(root: str, rel: str, matcher: Matcher, recursive: bool) -> bool:
    """Whether the symlink ``rel`` points at a file the target counts under its own name.

    ``root`` is the target's real path.
    """
    inside = os.path.relpath(os.path.realpath(os.path.join(root, rel)), root)
    if inside == ".." or inside.startswith(".." + os.sep):
        return False
    inside = inside.replace(os.sep, "/")
    if inside == rel or (not recursive and "/" in inside):
        return False
    return matcher.wants_file(inside)


@dataclass
class Listing:
    """A scan's backups, aliases left out, the inodes of the hard-linked ones, and the
    entries that could not be read (a path longer than PATH_MAX, no permission)."""

    files: FileMap
    inodes: dict[str, int]
    unreadable: list[str]


def drop_aliases(
    root: str, files: FileMap, links: Links, matcher: Matcher, recursive: bool
) -> dict[str, int]:
    """Remove the aliases among ``links`` from ``files``; the kept hard links' inodes."""
    inodes: dict[str, int] = {}
    holders: dict[int, str] = {}
    for name in sorted(links):
        link = links[name]
        if link == SYMLINK:
            if is_symlink_alias(root, name, matcher, recursive):
                del files[name]
        elif link in holders:
            del files[name]
        else:
            holders[link] = name
            inodes[name] = link
    return inodes


def scan_target(root: str, matcher: Matcher, recursive: bool) -> FileMap:
    """Every backup below ``root`` as {relative name: (size, mtime)}."""
    return scan_listing(root, matcher, recursive).files


def scan_listing(root: str, matcher: Matcher, recursive: bool) -> Listing:
    """Every backup below ``root`` (a real path), aliases left out."""
    dir_fd = _open_root(root)
    try:
        batch = StatMany(dir_fd)
        _list(root, dir_fd, matcher, recursive, batch)
        files = batch.finish()
        inodes = drop_aliases(root, files, batch.links, matcher, recursive) if batch.links else {}
        return Listing(files, inodes, batch.unreadable)
    finally:
        os.close(dir_fd)


class _Names(list[str]):
    """Collects a listing's names without statting them (``add`` as StatMany has it)."""

    def __init__(self) -> None:
        super().__init__()
        self.unreadable: list[str] = []

    def add(self, names: Iterable[str]) -> None:
        self.extend(names)


def list_names(root: str, matcher: Matcher, recursive: bool) -> list[str]:
    """The names a scan would stat, without statting them (for polling)."""
    dir_fd = _open_root(root)
    try:
        names = _Names()
        _list(root, dir_fd, matcher, recursive, names)
        return names
    finally:
        os.close(dir_fd)


def _open_root(root: str) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise TargetUnavailable(describe_os_error(exc)) from None


def _list(
    root: str, dir_fd: int, matcher: Matcher, recursive: bool, batch: StatMany | _Names
) -> None:
    if not recursive and matcher.base_only is not None:
        try:
            names = os.listdir(dir_fd)
        except OSError as exc:
            raise TargetUnavailable(describe_os_error(exc)) from None
        # The common case, kept lean: one directory, base-name patterns, filtered in C.
        batch.add(filter(matcher.base_only, names))
    else:
        _list_tree(root, dir_fd, matcher, recursive, batch)


def _list_tree(
    root: str, dir_fd: int, matcher: Matcher, recursive: bool, batch: StatMany | _Names
) -> None:
    """Add the non-directories below ``root`` that the patterns want, directory by directory."""
    try:
        entries: os._ScandirIterator[str] | None = os.scandir(dir_fd)
    except OSError as exc:
        raise TargetUnavailable(describe_os_error(exc)) from None
    # An explicit stack of paths, not recursion: a deep tree must not hit Python's
    # recursion limit, and a wide one must not hold a descriptor per directory.
    pending: list[str] = []
    prefix = ""
    while entries is not None:
        others: list[str] = []
        with entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError as exc:
                    log.debug("skipping %s%s: %s", prefix, entry.name, describe_os_error(exc))
                    batch.unreadable.append(prefix + entry.name)
                    continue
                if not is_dir:
                    others.append(entry.name)
                elif recursive and matcher.wants_dir(rel := prefix + entry.name):
                    pending.append(rel + "/")
        # A helper may stat these while the listing goes on.
        if matcher.base_only is not None:  # filtered in C, as in a flat scan
            batch.add(map(prefix.__add__, filter(matcher.base_only, others)))
        else:
            batch.add(rel for name in others if matcher.wants_name(rel := prefix + name))
        entries = None
        while pending and entries is None:
            prefix = pending.pop()
            try:
                entries = os.scandir(os.path.join(root, prefix))
            except OSError as exc:
                log.debug("skipping %s: %s", prefix, describe_os_error(exc))
                batch.unreadable.append(prefix)
