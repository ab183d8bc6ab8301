"""One full scan of a target directory with ``os.scandir``.

Only the root's failure fails a scan (the target is then down); a file that
vanishes, a sub-directory that cannot be read or a name that is not UTF-8
is skipped or kept as it is, never fatal. Symlinked directories are not
followed, so a symlink loop cannot recurse; symlinked files count as the
file they point to.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from stat import S_ISREG

from exporter.index import FileMap
from exporter.matcher import Matcher

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


def stat_backup(path: str) -> tuple[int, float] | None:
    """(size, mtime) of a regular file (following symlinks), or None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime


def scan_target(root: str, matcher: Matcher, recursive: bool) -> FileMap:
    """Every backup below ``root`` as {relative name: (size, mtime)}."""
    try:
        first = os.scandir(root)
    except OSError as exc:
        raise TargetUnavailable(describe_os_error(exc)) from None
    if not recursive and matcher.base_only is not None:
        return _scan_flat(first, matcher.base_only)
    return _scan_tree(first, matcher, recursive)


def _scan_flat(entries: os._ScandirIterator[str], wanted: Callable[[str], object]) -> FileMap:
    """The common case, kept lean: one directory, base-name patterns."""
    files: FileMap = {}
    with entries:
        for entry in entries:
            if wanted(entry.name) is None:
                continue
            try:
                st = entry.stat()  # follows a symlink to the file it names
            except OSError:
                continue  # vanished or unreadable between listing and stat
            if S_ISREG(st.st_mode):
                files[entry.name] = (st.st_size, st.st_mtime)
    return files


def _scan_tree(first: os._ScandirIterator[str], matcher: Matcher, recursive: bool) -> FileMap:
    files: FileMap = {}
    # An explicit stack of paths, not recursion: a deep tree must not hit Python's
    # recursion limit, and a wide one must not hold a descriptor per directory.
    pending: list[tuple[str, str]] = []
    entries: os._ScandirIterator[str] | None = first
    prefix = ""
    while entries is not None:
        with entries:
            for entry in entries:
                rel = prefix + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive and matcher.wants_dir(rel):
                            pending.append((entry.path, rel + "/"))
                        continue
                    if not matcher.wants_name(rel):
                        continue
                    st = entry.stat()
                except OSError as exc:
                    # Vanished or unreadable between listing and stat: skip that one entry.
                    log.debug("skipping %s: %s", entry.path, describe_os_error(exc))
                    continue
                if S_ISREG(st.st_mode):
                    files[rel] = (st.st_size, st.st_mtime)
        entries = None
        while pending and entries is None:
            path, prefix = pending.pop()
            try:
                entries = os.scandir(path)
            except OSError as exc:
                log.debug("skipping %s: %s", path, describe_os_error(exc))
    return files
