"""The exit statuses of every command, defined once."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0  # every check passes; the daemon is healthy; every file verified
    FAILING = 1  # a check fails; a backup is broken; unhealthy; a notification failed
    CONFIG = 2  # bad configuration or arguments
    UNREADABLE = 3  # a target cannot be read; a file could not be verified
    UNREACHABLE = 4  # the daemon cannot be reached (status)


# The overall state of a status document, as `check` and `status` exit with it.
STATE_EXIT = {"ok": Exit.OK, "failing": Exit.FAILING, "down": Exit.UNREADABLE}
