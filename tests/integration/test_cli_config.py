"""The command line on bad and good configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, write


@pytest.mark.parametrize(
    "text", ["bogus: 1", "targets: [{path: /a, max_age: soon}]", "a: [1", "targets: []"]
)
def test_cli_exits_2_with_one_line(tmp_path: Path, text: str) -> None:
    result = run_cli("check", "--config", write(tmp_path / "c.yml", text))
    assert result.returncode == 2
    assert result.stderr.startswith("backup-monitor: config error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_config_check_prints_effective_config(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yml", "targets: [{path: /srv/b, max_age: 86400, min_size: 1000}]")
    result = run_cli("config", "check", "--config", path, "--target", "x=/srv/x")
    assert result.returncode == 0, result.stderr
    assert "name: x" in result.stdout
    assert "max_age: 24h" in result.stdout
    assert "min_size: 1KiB" in result.stdout
    assert "/srv/b" not in result.stdout  # command-line targets replace the file's
