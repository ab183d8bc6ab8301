"""The configuration model and its sources; bad input is one clear line and exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import DEFAULT_EXCLUDES, ConfigError, load_config
from tests.helpers import write


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


def test_alertmanager_secrets_are_never_shown() -> None:
    from exporter.alerting.redact import redact_url
    from exporter.config import Config, render_config

    config = Config.model_validate(
        {
            "alertmanager": {
                "urls": "http://am1:9093 https://user:hunter2hunter2@am2:9093",
                "basic_auth": {"username": "bm", "password": "s3cr3t-pass"},
            }
        }
    )
    assert config.alertmanager.urls[0] == "http://am1:9093"
    shown = render_config(config, redact_url)
    for secret in ("hunter2hunter2", "s3cr3t-pass"):
        assert secret not in shown
    assert "password: <secret>" in shown
    with pytest.raises(ValueError, match="one of them"):
        Config.model_validate(
            {
                "alertmanager": {
                    "urls": ["http://am"],
                    "basic_auth": {"username": "a", "password": "b"},
                    "bearer_token": "t",
                }
            }
        )
    with pytest.raises(ValueError, match="reserved"):
        Config.model_validate(
            {"alertmanager": {"urls": ["http://am"], "external_labels": {"target": "x"}}}
        )
