"""A backup's timestamp: its mtime, or the time written in its name.

Backups copied by rsync or restored from object storage often lose their mtime;
with ``timestamp: name`` the name (``backup-2026-05-28-02-00-00.db``) is the truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

# strftime directives a name format may use, and what each matches.
_DIRECTIVES = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{1,2}",
    "d": r"\d{1,2}",
    "H": r"\d{1,2}",
    "M": r"\d{1,2}",
    "S": r"\d{1,2}",
    "j": r"\d{1,3}",
    "f": r"\d{1,6}",
    "b": r"[A-Za-z]{3}",
    "B": r"[A-Za-z]+",
    "z": r"[+-]\d{4}",
    "%": "%",
}

Stamper = Callable[[str, float], float | None]


def compile_name_format(name_format: str) -> re.Pattern[str]:
    """A regex matching the start of a base name written with ``name_format``."""
    parts = []
    index = 0
    while index < len(name_format):
        char = name_format[index]
        if char == "%":
            directive = name_format[index + 1 : index + 2]
            if directive not in _DIRECTIVES:
                raise ValueError(f"unsupported strftime directive %{directive} in {name_format!r}")
            parts.append(f"({_DIRECTIVES[directive]})" if directive != "%" else "%")
            index += 2
        else:
            parts.append(re.escape(char))
            index += 1
    return re.compile("".join(parts))


def make_stamper(mode: str, name_format: str | None, timezone: str | None) -> Stamper:
    """(relative name, mtime) -> timestamp, or None when the name does not parse."""
    if mode == "mtime" or not name_format:
        return lambda _name, mtime: mtime
    pattern = compile_name_format(name_format)
    zone = ZoneInfo(timezone) if timezone else None

    def stamp(name: str, _mtime: float) -> float | None:
        base = name.rpartition("/")[2]
        match = pattern.match(base)
        if not match:
            return None
        try:
            parsed = datetime.strptime(match.group(0), name_format)
        except ValueError:
            return None  # e.g. month 13
        if parsed.tzinfo is None and zone is not None:
            parsed = parsed.replace(tzinfo=zone)
        # A naive datetime is local time; in a DST overlap the first occurrence (fold=0).
        return parsed.timestamp()

    return stamp
