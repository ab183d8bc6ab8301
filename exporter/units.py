"""Parsing and printing of durations (``24h``) and sizes (``1KiB``, ``1KB``)."""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

# Decimal units are powers of 1000 and binary (…iB) powers of 1024, as the
# IEC says; a bare number is bytes.
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90"``, ``"30s"``, ``"1h30m"``, ``"7d"``…"""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r} (use e.g. 30s, 15m, 24h, 7d, 1h30m)")
    else:
        raise ValueError(f"invalid duration {value!r}")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``1024``, ``"512B"``, ``"1KB"`` (1000), ``"1KiB"`` (1024)…"""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        number, unit = float(value), "b"
    elif isinstance(value, float):
        number, unit = value, "b"
    elif isinstance(value, str) and (m := _SIZE.match(value.strip().lower())):
        number, unit = float(m.group(1)), m.group(2) or "b"
    else:
        raise ValueError(f"invalid size {value!r} (use e.g. 512B, 1KiB, 1KB, 2MiB)")
    if unit not in _SIZE_UNITS:
        raise ValueError(
            f"invalid size unit in {value!r} (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"invalid size {value!r}: must be >= 0")
    return int(number * _SIZE_UNITS[unit])


def format_duration(seconds: float) -> str:
    """Compact, exact where possible: ``86400`` -> ``24h``, ``90`` -> ``1m30s``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    text = "".join(parts)
    # 24h reads better than 1d for the common thresholds.
    return "24h" if text == "1d" else text


def humanize_age(seconds: float) -> str:
    """For people: ``1d 2h 5m``, ``3m 4s``, ``never`` for infinity."""
    if math.isinf(seconds):
        return "never"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def humanize_size(size: float) -> str:
    """For people, in binary units: ``1.5 MiB``, ``512 B``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, index = float(size), 0
    while abs(value) >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{int(value)} B" if index == 0 else f"{value:.1f} {units[index]}"


def format_size(size: int) -> str:
    """Exact and parseable back: ``1024`` -> ``1KiB``, ``1000`` -> ``1KB``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def parse_fraction(value: object) -> float:
    """A fraction from ``"50%"``, ``0.5`` or ``"0.5"``; ``"200%"`` is 2.0."""
    if isinstance(value, bool):
        raise ValueError(f"invalid percentage {value!r}")
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"invalid percentage {value!r} (use e.g. 50% or 0.5)") from None
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"invalid percentage {value!r}: must be >= 0")
    return number


def format_fraction(value: float) -> str:
    return f"{value * 100:g}%"


def printable(text: str) -> str:
    """Text safe to print on a terminal or a log line: control characters and the bytes
    of a name that is not UTF-8 (surrogate-escaped) shown as escapes, so a file name can
    neither fake a table row nor send terminal escapes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return ch.encode("unicode_escape").decode("ascii")
