"""TLS, basic auth and secrets: with real certificates, a real Prometheus, real logs."""

from __future__ import annotations

import base64
import logging
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import fetch, make_config, require_tool, wait_for, write_backup
from tests.helpers import query, run_cli
from tests.peers import free_port

PASSWORD = "correct horse battery"
SECRET = "Pl4nted-S3cret"


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    openssl = require_tool("openssl", "openssl")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=backup-monitor-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def web_config(tmp_path: Path, certs: tuple[Path, Path]) -> Path:
    cert, key = certs
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    return path


def get(
    url: str, cafile: Path | None, user: str | None = None, password: str = ""
) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_promtool_accepts_the_web_config(web_config: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "web-config", str(web_config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tls_and_basic_auth(tmp_path: Path, web_config: Path, certs, start_daemon) -> None:
    cert, _ = certs
    write_backup(tmp_path / "b" / "backup-1.db", 4096)
    daemon = start_daemon(
        make_config(
            targets=[{"path": str(tmp_path / "b"), "job": {}}], web_config_file=str(web_config)
        )
    )
    assert daemon.url.startswith("https://")
    status, body = get(daemon.url, cert, "prometheus", PASSWORD)
    assert status == 200
    assert 'backup_count{target="b"} 1.0' in body
    assert get(daemon.url, cert, "prometheus", "wrong")[0] == 401
    assert get(daemon.url, cert, "nobody", PASSWORD)[0] == 401
    assert get(daemon.url, cert)[0] == 401
    assert get(daemon.url.replace("/metrics", "/healthz"), cert) == (200, "ok\n")
    # Pings sit behind the same basic auth; `run` sends it from user:password@ in --url.
    assert get(daemon.url.replace("/metrics", "/ping/b"), cert)[0] == 401
    assert daemon.targets[0].job.status.last is None
    with_auth = f"https://prometheus:{PASSWORD}@127.0.0.1:{daemon.http.port}"
    wrapped = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--target", "b", "--url", with_auth, "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SSL_CERT_FILE": str(cert)},
    )
    assert wrapped.returncode == 0
    assert wrapped.stderr == ""
    assert daemon.targets[0].job.status.successes == 1
    # Plain HTTP on the TLS port is refused.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(daemon.url.replace("https://", "http://"), None, "prometheus", PASSWORD)
    # The server is still fine afterwards.
    assert get(daemon.url, cert, "prometheus", PASSWORD)[0] == 200


def test_bad_web_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  admin: plaintext\n")
    result = run_cli(
        "serve", "-t", str(tmp_path), "--listen", "127.0.0.1:0", "--web.config.file", str(path)
    )
    assert result.returncode == 2
    assert "basic_auth_users.admin: not a bcrypt hash" in result.stderr
    path.write_text(
        "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"
    )
    result = run_cli(
        "serve", "-t", str(tmp_path), "--listen", "127.0.0.1:0", "--web.config.file", str(path)
    )
    assert result.returncode == 2
    assert "cannot load certificate or key" in result.stderr


def test_real_prometheus_scrapes_with_tls_and_basic_auth(
    tmp_path: Path, web_config: Path, certs, start_daemon
) -> None:
    binary = require_tool("prometheus", "prometheus")
    cert, _ = certs
    write_backup(tmp_path / "b" / "backup-1.db", 4096)
    daemon = start_daemon(
        make_config(targets=[{"path": str(tmp_path / "b")}], web_config_file=str(web_config))
    )
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        f"""
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: backup-monitor
    scheme: https
    tls_config: {{ca_file: {cert}}}
    basic_auth: {{username: prometheus, password: '{PASSWORD}'}}
    static_configs: [{{targets: ["127.0.0.1:{daemon.http.port}"]}}]
"""
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: query(url, 'up{job="backup-monitor"} == 1') if _ready(url) else False,
            timeout=30,
        )
        assert query(url, 'backup_count{target="b"}')[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return "Ready" in fetch(url + "/-/ready")
    except OSError:
        return False


def test_secrets_reach_no_log_metric_page_or_output(
    tmp_path: Path, web_config: Path, certs, start_daemon, caplog, monkeypatch
) -> None:
    cert, _ = certs
    url = f"json://user:{SECRET}@127.0.0.1:{free_port()}/hook?token={SECRET}"
    monkeypatch.setenv(
        "BACKUP_MONITOR_NOTIFY_URLS",
        f"mailto://ops:{SECRET}@127.0.0.1:{free_port()}?to=a@example.com&from=b@example.com&mode=insecure",
    )
    write_backup(tmp_path / "b" / "backup-1.db", 10)
    config_file = tmp_path / "c.yml"
    config_file.write_text(
        f"notify:\n  urls: ['{url}']\n  heartbeat: {{url: 'http://127.0.0.1:{free_port()}/{SECRET}'}}\n"
    )
    checked = run_cli("config", "check", "--config", str(config_file), "-t", str(tmp_path / "b"))
    assert checked.returncode == 0, checked.stderr
    assert SECRET not in checked.stdout + checked.stderr
    with caplog.at_level(logging.DEBUG):
        from exporter.config import load_config

        config = load_config(
            str(config_file),
            overrides={
                "listen": "127.0.0.1:0",
                "state_dir": str(tmp_path / "state"),
                "web_config_file": str(web_config),
                "targets": [{"path": str(tmp_path / "b"), "verify": "none", "settle": 0}],
            },
        )
        daemon = start_daemon(config)
        wait_for(lambda: daemon.alerting.delivery.failed >= 2)
        pages = [
            get(daemon.url, cert, "prometheus", PASSWORD)[1],
            get(daemon.url.replace("/metrics", "/"), cert, "prometheus", PASSWORD)[1],
        ]
    assert "will retry" in caplog.text
    for text in [caplog.text, *pages, (tmp_path / "state" / "state.json").read_text()]:
        assert SECRET not in text
        assert PASSWORD not in text
