"""One full scan of a target directory: list the names, then stat the backups among them.

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
from stat import S_ISREG

from exporter.index import FileMap
from exporter.matcher import Matcher
from exporter.statmany import StatMany

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
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise TargetUnavailable(describe_os_error(exc)) from None
    try:
        batch = StatMany(dir_fd)
        if not recursive and matcher.base_only is not None:
            try:
                names = os.listdir(dir_fd)
            except OSError as exc:
                raise TargetUnavailable(describe_os_error(exc)) from None
            # The common case, kept lean: one directory, base-name patterns, filtered in C.
            batch.add(filter(matcher.base_only, names))
        else:
            _list_tree(root, dir_fd, matcher, recursive, batch)
        return batch.finish()
    finally:
        os.close(dir_fd)


def _list_tree(root: str, dir_fd: int, matcher: Matcher, recursive: bool, batch: StatMany) -> None:
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
