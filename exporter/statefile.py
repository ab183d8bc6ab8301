"""Files in the state directory: written whole and atomically, never truncated in place;
a file that cannot be read back is moved aside, not deleted, so nothing is lost silently."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time

log = logging.getLogger(__name__)


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
