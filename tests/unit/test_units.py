"""Durations and sizes: what users write in the config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.units import (
    format_duration,
    format_size,
    humanize_age,
    humanize_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", 86400),
        ("30s", 30),
        ("15m", 900),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1w", 604800),
        ("250ms", 0.25),
        ("90", 90),
        (90, 90),
        (1.5, 1.5),
        ("0.5h", 1800),
        (" 2H ", 7200),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30m", "-5s", "ten", None, True, [1]])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1KiB", 1024),
        ("1KB", 1000),
        ("512B", 512),
        ("2MiB", 2097152),
        ("1k", 1024),
        ("1.5GB", 1500000000),
        (1024, 1024),
        ("1024", 1024),
        ("3 TiB", 3 * 1024**4),
    ],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "KiB", "1XB", "-1KB", "1 2", None, False])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_duration_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=2**50))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_format_duration_reads_naturally() -> None:
    assert format_duration(86400) == "24h"
    assert format_duration(90) == "1m30s"
    assert format_duration(172800) == "2d"


def test_humanize() -> None:
    assert humanize_age(93900) == "1d 2h 5m"
    assert humanize_age(184) == "3m 4s"
    assert humanize_age(float("inf")) == "never"
    assert humanize_age(-5) == "0s"
    assert humanize_size(512) == "512 B"
    assert humanize_size(1536) == "1.5 KiB"
    assert humanize_size(10 * 1024**3) == "10.0 GiB"
