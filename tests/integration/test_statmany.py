"""Statting shared with a helper process gives exactly what statting here gives, even when
the helper cannot start or dies half-way."""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.index import FileMap
from exporter.sources import parallel_stat as statmany
from exporter.sources import stat_helper as stathelper
from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher
from exporter.sources.parallel_stat import Helper, stat_many
from tests.conftest import write_backup

OddDir = tuple[int, list[str]]  # a directory's descriptor, and names in it


@pytest.fixture
def odd_dir(tmp_path: Path) -> Iterator[OddDir]:
    """A directory of backups and of names a stat loop can trip on, and its descriptor."""
    for i in range(1500):
        write_backup(tmp_path / f"backup-{i:05d}.db", i % 97, mtime=1_700_000_000 + i)
    os.mkfifo(tmp_path / "fifo.db")
    (tmp_path / "subdir.db").mkdir()
    (tmp_path / "dangling.db").symlink_to(tmp_path / "nowhere")
    (tmp_path / "alias.db").symlink_to(tmp_path / "backup-00001.db")
    with open(os.fsencode(str(tmp_path)) + b"/bad-\xff-name.db", "wb") as handle:
        handle.write(b"12345678")
    (tmp_path / "new\nline.db").write_bytes(b"abc")
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    names = [*os.listdir(dir_fd), "vanished.db"]
    try:
        yield dir_fd, names
    finally:
        os.close(dir_fd)


def expected(dir_fd: int, names: list[str]) -> FileMap:
    files: FileMap = {}
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files[name] = (st.st_size, st.st_mtime)
    return files


def test_in_process_and_shared_agree_with_os_stat(odd_dir: OddDir) -> None:
    dir_fd, names = odd_dir
    want = expected(dir_fd, names)
    assert len(want) == 1500 + 3  # the backups, the alias, the odd names
    assert stat_many(dir_fd, names, shared=False) == want
    assert stat_many(dir_fd, names, shared=True) == want


def run_helper(helper: Helper, files: FileMap, until: Callable[[], bool]) -> list[int]:
    """Pump the helper until ``until()`` (30 s at most); how far it had got at each pump."""
    progress = []
    deadline = time.monotonic() + 30
    while not until() and time.monotonic() < deadline:
        helper.pump(files, {}, [])
        progress.append(helper.done)
        time.sleep(0.002)
    return progress


def test_the_helper_alone_covers_names_streamed_to_it(odd_dir: OddDir) -> None:
    """Names sent while the listing goes on, odd bytes and all, are all reported, in order."""
    dir_fd, all_names = odd_dir
    names = all_names[:600]
    helper = Helper(dir_fd, names)
    files: FileMap = {}
    try:
        first = run_helper(helper, files, lambda: helper.done == 600)
        names += all_names[600:]  # the listing found more
        helper.end_input()
        rest = run_helper(helper, files, lambda: not helper.running)
    finally:
        helper.stop()
    assert helper.done == len(all_names)
    assert first + rest == sorted(first + rest)
    assert files == expected(dir_fd, all_names)


def test_a_helper_that_cannot_start_only_costs_time(
    odd_dir: OddDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dir_fd, names = odd_dir
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(Helper, "start_failed", False)
    with caplog.at_level(logging.WARNING):
        assert stat_many(dir_fd, names, shared=True) == expected(dir_fd, names)
        assert stat_many(dir_fd, names, shared=True) == expected(dir_fd, names)
    # Said once, not at every rescan.
    assert caplog.text.count("cannot start a stat helper") == 1


def test_a_helper_that_dies_half_way_only_costs_time(
    odd_dir: OddDir, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper's output is cut after a few blocks (it dies of SIGPIPE): what it reported
    stands, this process stats the rest."""
    dir_fd, names = odd_dir
    wrapper = tmp_path_factory.mktemp("bin") / "python"
    # The output is cut a little after the first block of records.
    cut = stathelper.HEADER + stathelper.RECORD * stathelper.CHUNK + 5000
    wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" | head -c {cut}\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))
    helper = Helper(dir_fd, names)
    helper.end_input()
    files: FileMap = {}
    run_helper(helper, files, lambda: not helper.running)
    assert not helper.running
    assert 0 < helper.done < len(names)  # a part was reported, not all
    assert stat_many(dir_fd, names, shared=True) == expected(dir_fd, names)


@pytest.mark.parametrize("recursive", [False, True])
def test_scans_with_and_without_a_helper_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recursive: bool
) -> None:
    """A whole scan, the helper started early (flat) or part-way through the listing (tree)."""
    for d in range(20):
        for i in range(40):
            write_backup(tmp_path / f"d{d:02d}" / f"backup-{i:02d}.db", i, mtime=1e9 + d * 60 + i)
            write_backup(tmp_path / f"backup-{d:02d}-{i:02d}.db", i, mtime=2e9 - d * 60 - i)
    (tmp_path / "backup-skip.db.tmp").write_bytes(b"x")
    matcher = Matcher(["backup-*"], [".*", "*.tmp"])
    monkeypatch.setattr(statmany, "_cpus", lambda: 1)
    alone = scan_target(str(tmp_path), matcher, recursive)
    assert len(alone) == (1600 if recursive else 800)
    monkeypatch.setattr(statmany, "_cpus", lambda: 2)
    monkeypatch.setattr(statmany, "MIN_SHARED", 200)
    monkeypatch.setattr(statmany, "BIG_DIRECTORY", 0 if not recursive else 1 << 40)
    started = []
    real_helper = statmany.Helper
    monkeypatch.setattr(statmany, "Helper", lambda *a: started.append(1) or real_helper(*a))
    assert scan_target(str(tmp_path), matcher, recursive) == alone
    assert started == [1]
