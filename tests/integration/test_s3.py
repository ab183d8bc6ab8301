"""Object-storage targets against a real S3 API server (moto, on 127.0.0.1)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import make_config, scrape, value, wait_for, write_backup
from tests.helpers import make_db
from tests.peers import WebhookReceiver, free_port

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")

KEY_ID, SECRET = "AKIAFAKEFAKEFAKE0000", "s3cr3t/Key+Never+Logged"


@pytest.fixture
def aws_env(monkeypatch):
    for name, val in {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, val)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3(aws_env):
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets in this process across servers: start each test empty.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="backups")
    yield endpoint, client, server, port
    server.stop()


def put(client, key: str, size: int, body: bytes | None = None) -> None:
    # LastModified is the upload time; tests that need other times put them in the name.
    client.put_object(Bucket="backups", Key=key, Body=body if body is not None else b"x" * size)


def remote(endpoint: str, **extra) -> dict:
    return {
        "name": "offsite",
        "path": "s3://backups/quota-proxy/",
        "s3": {"endpoint_url": endpoint, "list_interval": "0.3s", "timeout": "2s"},
        **extra,
    }


def test_age_size_count_and_name_timestamps(s3, start_daemon) -> None:
    endpoint, client, _, _ = s3
    put(client, "quota-proxy/backup-2026-05-20-02-00-00.db", 5000)
    put(client, "quota-proxy/backup-2026-05-21-02-00-00.db", 800)
    put(client, "quota-proxy/other/backup-2026-05-22-02-00-00.db", 7000)  # not recursive
    put(client, "elsewhere/backup-2026-05-23-02-00-00.db", 7000)
    config = make_config(
        targets=[
            remote(
                endpoint, timestamp="name", name_format="backup-%Y-%m-%d-%H-%M-%S", timezone="UTC"
            )
        ]
    )
    daemon = start_daemon(config)
    # The verdict follows the first listing by one evaluator round.
    verdict = lambda: value(scrape(daemon.url), "backup_check_ok", target="offsite", check="age")  # noqa: E731
    wait_for(lambda: verdict() is not None)
    s = scrape(daemon.url)
    assert value(s, "backup_target_up", target="offsite") == 1
    assert value(s, "backup_count", target="offsite") == 2
    assert value(s, "backup_newest_size_bytes", target="offsite") == 800
    assert (
        value(s, "backup_newest_timestamp_seconds", target="offsite")
        == datetime(2026, 5, 21, 2, tzinfo=UTC).timestamp()
    )
    assert value(s, "backup_check_ok", target="offsite", check="age") == 0
    assert value(s, "backup_check_ok", target="offsite", check="size") == 0
    assert value(s, "backup_values_stale", target="offsite") == 0
    put(client, "quota-proxy/backup-2099-01-01-02-00-00.db", 9000)
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="offsite") == 3)


def test_pagination_beyond_a_thousand_objects(s3, start_daemon) -> None:
    endpoint, client, _, _ = s3
    for i in range(1001):
        put(client, f"quota-proxy/backup-{i:05d}.db", 10 + i)
    daemon = start_daemon(make_config(targets=[remote(endpoint)]))
    wait_for(
        lambda: value(scrape(daemon.url), "backup_count", target="offsite") == 1001, timeout=30
    )
    total = sum(10 + i for i in range(1001))
    assert value(scrape(daemon.url), "backup_total_size_bytes", target="offsite") == total


def test_server_stopped_mid_run_keeps_stale_values(s3, start_daemon) -> None:
    endpoint, client, server, port = s3
    put(client, "quota-proxy/backup-1.db", 4096)
    daemon = start_daemon(make_config(targets=[remote(endpoint)]))
    wait_for(lambda: value(scrape(daemon.url), "backup_count", target="offsite") == 1)
    server.stop()
    wait_for(
        lambda: value(scrape(daemon.url), "backup_target_up", target="offsite") == 0, timeout=30
    )
    s = scrape(daemon.url)
    assert value(s, "backup_count", target="offsite") == 1  # the last good listing, kept
    assert value(s, "backup_values_stale", target="offsite") == 1
    assert value(s, "backup_monitor_scan_errors_total", target="offsite") >= 1
    again = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    again.start()
    try:
        wait_for(
            lambda: value(scrape(daemon.url), "backup_target_up", target="offsite") == 1, timeout=30
        )
        assert value(scrape(daemon.url), "backup_values_stale", target="offsite") == 0
    finally:
        again.stop()


def test_wrong_credentials_down_with_reason_and_no_secret(
    tmp_path: Path, aws_env, start_daemon, caplog
) -> None:
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}  # this server checks keys
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(endpoint), timeout=30)
        with caplog.at_level(logging.DEBUG):
            daemon = start_daemon(make_config(targets=[remote(endpoint)]))
            wait_for(lambda: "is down" in caplog.text, timeout=30)
        doc = daemon.status()["targets"][0]
        assert doc["up"] is False
        assert "InvalidAccessKeyId" in doc["error"] or "AccessDenied" in doc["error"], doc["error"]
        assert SECRET not in caplog.text
        assert SECRET not in str(daemon.status())
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def test_mirror_check_fires_and_resolves(tmp_path: Path, s3, start_daemon) -> None:
    endpoint, client, _, _ = s3
    receiver = WebhookReceiver()
    local = tmp_path / "local"
    write_backup(local / "backup-1.db", 4096, time.time() - 3 * 3600)
    put(client, "quota-proxy/backup-1.db", 4096)
    write_backup(local / "backup-2.db", 5000, time.time() - 3 * 3600)  # never copied
    config = make_config(
        targets=[
            {"name": "local", "path": str(local)},
            remote(endpoint, mirror_of="local", mirror_lag="2h"),
        ],
        notify={"urls": [receiver.url()]},
    )
    try:
        daemon = start_daemon(config)
        wait_for(
            lambda: (
                "[FIRING] off-site copy missing: offsite" in [r["title"] for r in receiver.requests]
            )
        )
        lag = value(scrape(daemon.url), "backup_mirror_lag_seconds", target="offsite")
        assert 3 * 3600 - 60 < lag < 3 * 3600 + 60
        put(client, "quota-proxy/backup-2.db", 5000)
        wait_for(
            lambda: (
                "[RESOLVED] off-site copy missing: offsite"
                in [r["title"] for r in receiver.requests]
            )
        )
        assert value(scrape(daemon.url), "backup_mirror_lag_seconds", target="offsite") == 0
    finally:
        receiver.stop()


def test_verify_download(tmp_path: Path, s3, start_daemon) -> None:
    endpoint, client, _, _ = s3
    good = make_db(tmp_path / "good.db")
    put(client, "quota-proxy/backup-1.db", 0, body=good.read_bytes())
    daemon = start_daemon(make_config(targets=[remote(endpoint, verify="download")]))
    wait_for(
        lambda: value(scrape(daemon.url), "backup_verify_ok", target="offsite") == 1, timeout=20
    )
    put(client, "quota-proxy/backup-2.db", 0, body=b"SQLite format 3\x00" + b"\x00" * 500)
    wait_for(
        lambda: value(scrape(daemon.url), "backup_verify_ok", target="offsite") == 0, timeout=20
    )
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("backup-monitor-verify-*"))


def test_a_download_over_its_limit_cannot_be_verified(tmp_path: Path, s3, start_daemon) -> None:
    """An object larger than verify.max_download is not judged broken: 'cannot verify'."""
    endpoint, client, _, _ = s3
    put(client, "quota-proxy/backup-1.db", 0, body=make_db(tmp_path / "big.db").read_bytes())
    verify = {"kind": "download", "max_download": "1KiB"}
    daemon = start_daemon(make_config(targets=[remote(endpoint, verify=verify)]))
    errors = ("backup_monitor_verifications_total", {"result": "error"})
    wait_for(lambda: (value(scrape(daemon.url), errors[0], **errors[1]) or 0) >= 1, timeout=20)
    s = scrape(daemon.url)
    assert value(s, "backup_verify_ok", target="offsite") is None  # no verdict
    assert value(s, "backup_verify_pending", target="offsite") == 1
    assert value(s, "backup_monitor_verifications_total", result="failed") == 0
