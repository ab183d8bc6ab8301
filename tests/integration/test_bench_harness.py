"""The benchmark harness counts what it claims to count (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness import find_pipeline, make_tree, percentile, repeat, summary
from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 201))  # 1..200
    assert percentile(values, 0.99) == 198  # the 198th smallest of 200
    assert percentile(values, 0.5) == 100
    assert percentile([5.0], 0.99) == 5.0
    assert summary([3.0, 1.0, 2.0]) == {"n": 3, "median": 2.0, "p99": 3.0}
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_make_tree_makes_what_it_says(tmp_path: Path) -> None:
    assert make_tree(tmp_path / "flat", 50) == 50
    assert len(list((tmp_path / "flat").iterdir())) == 50
    make_tree(tmp_path / "tree", 60, folders=6)
    folders = list((tmp_path / "tree").iterdir())
    assert len(folders) == 6
    assert sum(len(list(f.iterdir())) for f in folders) == 60


def test_find_pipeline_and_scan_agree_on_the_newest(tmp_path: Path) -> None:
    make_tree(tmp_path, 40, seed=7)
    line = find_pipeline(tmp_path).split()
    files = scan_target(str(tmp_path), Matcher(["backup-*"], []), False)
    name, (size, mtime) = max(files.items(), key=lambda kv: kv[1][1])
    assert line[2].endswith(name)
    assert int(line[1]) == size
    assert float(line[0]) == pytest.approx(mtime, abs=1e-6)


def test_repeat_runs_the_action_each_time() -> None:
    calls = []
    samples = repeat(lambda: calls.append(1), 7)
    assert len(samples) == len(calls) == 7
    assert all(s >= 0 for s in samples)
