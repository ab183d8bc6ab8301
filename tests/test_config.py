"""The configuration model and its sources; bad input is one clear line and exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import DEFAULT_EXCLUDES, ConfigError, load_config


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path / "c.yml", "targets: [{path: /var/backups/db}]"), environ={}
    )
    target = config.targets[0]
    assert target.name == "db"
    assert (target.effective_max_age, target.min_size, target.min_count) == (86400, 1024, None)
    assert target.patterns == ["*"]
    assert target.exclude == DEFAULT_EXCLUDES
    assert target.recursive is False
    assert config.listen == ":19117"
    assert config.metrics_path == "/metrics"
    assert config.rescan_interval == 300
    assert config.namespace == "backup"


def test_sources_later_wins(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yml", "listen: ':1'\nlog_level: debug\nrescan_interval: 1m\n")
    env = {
        "BACKUP_MONITOR_LISTEN": ":2",
        "BACKUP_MONITOR_RESCAN_INTERVAL": "2m",
        "BACKUP_MONITOR_TARGETS": "a=/x,/var/y",
    }
    config = load_config(path, environ=env, overrides={"listen": ":3", "log_level": None})
    assert config.listen == ":3"
    assert config.log_level == "debug"
    assert config.rescan_interval == 120
    assert [(t.name, t.path) for t in config.targets] == [("a", "/x"), ("y", "/var/y")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1", "bogus: unknown key"),
        ("targets: [{path: /a, max_age: 2x}]", "targets[0].max_age: invalid duration '2x'"),
        ("targets: [{path: /a, min_size: 1XB}]", "targets[0].min_size: invalid size unit"),
        ("targets: [{path: /a}, {path: /b/a}]", "duplicate target name 'a'"),
        ("targets: [{path: /a, colour: red}]", "targets[0].colour: unknown key"),
        ("listen: nowhere", "listen: invalid listen address"),
        ("targets: [{path: /a, labels: {target: x}}]", "reserved"),
        ("watch_mode: fast", "watch_mode: Input should be 'auto', 'inotify' or 'polling'"),
        ("targets: {path: /a}", "targets: Input should be a valid list"),
        ("[1, 2]", "must contain a mapping"),
        ("a: [1", "invalid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path / "c.yml", text), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "missing.yml"), environ={})


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


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


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("targets: [{path: /a, s3: {region: x}}]", "s3: applies to s3:// paths only"),
        ("targets: [{path: /a, verify: download}]", "download applies to s3:// paths only"),
        ("targets: [{path: 's3://b/p/', watch_mode: polling}]", "watch_mode applies to"),
        ("targets: [{path: /a, endpoint_url: x}]", "endpoint_url is now s3.endpoint_url"),
        ("targets: [{path: /a, verify_query: x}]", "verify_query is now verify.query"),
        ("targets: [{path: 's3://b/p/', poll_interval: 1m}]", "is now s3.list_interval"),
        ("targets: [{path: /a, verify: {kind: sqlite, sql: x}}]", "verify.sql: unknown key"),
    ],
)
def test_options_live_with_their_feature(tmp_path: Path, text: str, error: str) -> None:
    """Options of one feature sit in its sub-model; given where they cannot apply, or under
    their old flat name, they are an error naming the key."""
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_config(write(tmp_path / "c.yml", text), environ={})


def test_verify_shorthand_and_s3_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path / "c.yml", "targets: [{path: /a, verify: sqlite}, {path: 's3://b/p/'}]"),
        environ={},
    )
    local, remote = config.targets
    assert (local.verify.kind, local.verify.timeout, local.s3) == ("sqlite", 60.0, None)
    assert remote.storage.list_interval == 300.0
