"""The scan never fails on odd entries, and picks exactly the backups."""

from __future__ import annotations

import fnmatch
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.sources.listing import TargetUnavailable, scan_target
from exporter.sources.matcher import Matcher
from tests.conftest import write_backup

DEFAULT = Matcher(["*"], [".*", "*.tmp", "*.part", "*.partial", "*.lock"])


def test_patterns_and_excludes(tmp_path: Path) -> None:
    for name in ["backup-1.db", "backup-2.db.gz", "other.txt", "backup-3.db.tmp", ".backup-4.db"]:
        write_backup(tmp_path / name, 10)
    matcher = Matcher(["backup-*.db*"], [".*", "*.tmp"])
    assert set(scan_target(str(tmp_path), matcher, False)) == {"backup-1.db", "backup-2.db.gz"}


def test_recursive_and_path_patterns(tmp_path: Path) -> None:
    write_backup(tmp_path / "a" / "b" / "x.db", 1)
    write_backup(tmp_path / "a" / "y.db", 1)
    write_backup(tmp_path / "top.db", 1)
    assert set(scan_target(str(tmp_path), DEFAULT, False)) == {"top.db"}
    assert set(scan_target(str(tmp_path), DEFAULT, True)) == {"a/b/x.db", "a/y.db", "top.db"}
    only_b = Matcher(["a/b/*"], [])
    assert set(scan_target(str(tmp_path), only_b, True)) == {"a/b/x.db"}


def test_odd_entries_never_crash(tmp_path: Path) -> None:
    write_backup(tmp_path / "good.db", 5)
    os.mkfifo(tmp_path / "fifo.db")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.db"))
    (tmp_path / "loop").symlink_to(tmp_path)  # symlink loop: not followed
    (tmp_path / "dangling.db").symlink_to(tmp_path / "nowhere")
    (tmp_path / "alias.db").symlink_to(tmp_path / "good.db")  # an alias: not a backup
    raw = os.fsencode(str(tmp_path)) + b"/bad-\xff-name.db"
    with open(raw, "wb") as handle:
        handle.write(b"12345678")
    newline = tmp_path / "new\nline.db"
    newline.write_bytes(b"abc")
    long_name = tmp_path / ("b" * 252 + ".db")
    long_name.write_bytes(b"abcd")
    deep = tmp_path
    for i in range(60):
        deep = deep / f"d{i}"
    write_backup(deep / "deep.db", 7)
    try:
        files = scan_target(str(tmp_path), DEFAULT, True)
    finally:
        sock.close()
    bad = os.fsdecode(b"bad-\xff-name.db")
    assert files.keys() == {
        "good.db",
        bad,
        "new\nline.db",
        long_name.name,
        "/".join(f"d{i}" for i in range(60)) + "/deep.db",
    }
    assert files[bad][0] == 8


def test_missing_and_unreadable_root(tmp_path: Path) -> None:
    with pytest.raises(TargetUnavailable, match="directory does not exist"):
        scan_target(str(tmp_path / "missing"), DEFAULT, False)
    write_backup(tmp_path / "file", 1)
    with pytest.raises(TargetUnavailable, match="not a directory"):
        scan_target(str(tmp_path / "file"), DEFAULT, False)


PATTERNS = ["backup-*", "*.db", "*", "a?c*", "[ab]*", "x", "*~", ".*", "*.tmp", "*.d*b", "b*"]


@given(
    st.lists(st.sampled_from(PATTERNS), max_size=3),
    st.lists(st.sampled_from(PATTERNS), max_size=4),
    st.text("ab.-x~dbtmp\n", max_size=6),
)
def test_patterns_agree_with_fnmatch(include: list[str], exclude: list[str], name: str) -> None:
    """The one-regex fast path (prefix and suffix exclusions folded in) agrees with fnmatch."""
    matcher = Matcher(include, exclude)
    assert matcher.base_only is not None
    want = any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
        fnmatch.fnmatchcase(name, p) for p in exclude
    )
    assert (matcher.base_only(name) is not None) == want


def test_aliases_are_not_backups(tmp_path: Path) -> None:
    """A `latest` symlink and a hard link name a backup already counted; a symlink to a
    file outside the target is that file."""
    root = tmp_path / "t"
    write_backup(root / "backup-2026-01-01.db", 5000)
    write_backup(root / "backup-2026-01-02.db", 6000)
    (root / "backup-latest.db").symlink_to("backup-2026-01-02.db")
    os.link(root / "backup-2026-01-01.db", root / "backup-copy.db")
    write_backup(tmp_path / "elsewhere" / "offsite.db", 700)
    (root / "backup-offsite.db").symlink_to(tmp_path / "elsewhere" / "offsite.db")
    files = scan_target(str(root), Matcher(["backup-*.db*"], []), False)
    assert sorted(files) == ["backup-2026-01-01.db", "backup-2026-01-02.db", "backup-offsite.db"]
    assert sum(size for size, _ in files.values()) == 11700
