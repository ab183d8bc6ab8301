"""Faults under attack: nothing hangs, nothing dies on reload, no secret in any log,
bounded verification. One test per finding, on real files and real processes."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import make_config, scrape, small_tmpfs, value, wait_for, write_backup
from tests.helpers import base_config, make_db, run_cli, titles, write_config
from tests.peers import WebhookReceiver
from tests.process import DaemonProcess


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def timed_cli(
    *args: str, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    result = run_cli(*args, env=env)
    return time.monotonic() - started, result


# --- 1. only regular files are ever opened -------------------------------------------------


def test_fifo_sidecars_and_devices_never_hang(tmp_path: Path) -> None:
    backups = tmp_path / "b"
    backups.mkdir()
    db = make_db(backups / "backup-1.db")
    os.utime(db, (time.time() - 3600,) * 2)
    os.mkfifo(backups / "backup-1.db.sha256")  # a FIFO named like a sidecar
    os.mkfifo(backups / "SHA256SUMS")
    took, result = timed_cli("verify", str(db))
    assert took < 10
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sqlite ok" in result.stdout
    took, result = timed_cli("check", "-t", str(backups))
    assert took < 10
    assert result.returncode == 0, result.stdout + result.stderr
    os.unlink(backups / "backup-1.db.sha256")
    (backups / "backup-1.db.sha256").symlink_to("/dev/zero")  # would read for ever
    took, result = timed_cli("verify", "--kind", "checksum", str(db))
    assert took < 10
    assert result.returncode == 1
    assert "no checksum found" in result.stdout
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    took, result = timed_cli("verify", str(fifo))
    assert took < 10
    assert result.returncode == 3
    assert result.stdout.strip() == f"ERROR {fifo}: cannot verify: a FIFO, not a regular file"


def test_daemon_with_a_fifo_sidecar_verifies_others_and_stops(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        db = make_db(tmp_path / name / "backup-1.db")
        os.utime(db, (time.time() - 3600,) * 2)
    os.mkfifo(tmp_path / "a" / "SHA256SUMS")
    targets = [{"path": str(tmp_path / n), "verify": "auto"} for n in ("a", "b")]
    config = write_config(tmp_path / "c.yml", base_config(tmp_path, targets))
    daemon = DaemonProcess(config, tmp_path / "log").start()
    try:
        for name in ("a", "b"):
            wait_for(lambda n=name: value(scrape(daemon.url), "backup_verify_ok", target=n) == 1)
    finally:
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 3


# --- 2. configuration: one line, exit 2; a reload never kills the daemon -------------------


BAD_CONFIGS = {
    "not UTF-8": b"targets: [{path: /x}]\nlisten: '\xff'\n",
    "deeply nested": b"targets: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "two targets keys": b"targets: [{path: /a}]\ntargets: [{path: /b}]\n",
    "newline in a name": b'targets: [{path: /a, name: "a\\nb"}]\n',
    "huge interval": b"targets: [{path: /a}]\nrescan_interval: 99999999w\n",
}


@pytest.mark.parametrize("content", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_files_give_one_line_and_exit_2(tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "c.yml"
    config.write_bytes(content)
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_sighup_with_a_bad_file_keeps_the_running_configuration(tmp_path: Path) -> None:
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    config = write_config(
        tmp_path / "c.yml", base_config(tmp_path, [{"path": str(tmp_path / "a")}])
    )
    daemon = DaemonProcess(config, tmp_path / "log").start()
    try:
        for content in (BAD_CONFIGS["not UTF-8"], BAD_CONFIGS["deeply nested"]):
            rejected = daemon.logs().count("reload rejected")
            config.write_bytes(content)
            daemon.send(signal.SIGHUP)
            wait_for(lambda rejected=rejected: daemon.logs().count("reload rejected") > rejected)
            assert value(scrape(daemon.url), "backup_count", target="a") == 1
        assert "not UTF-8 text (byte 0xff" in daemon.logs()
        assert "nested too deeply" in daemon.logs()
        assert "Traceback" not in daemon.logs()
    finally:
        assert daemon.stop() == 0


# --- 3. every duration and size is bounded -------------------------------------------------


def test_a_slow_webhook_gets_exactly_one_copy(tmp_path: Path, start_daemon, webhook) -> None:
    webhook.delay = 6.0  # longer than apprise's own 4 s, shorter than notify.timeout
    write_backup(tmp_path / "db" / "backup-1.db", 10)
    config = make_config(
        targets=[{"name": "db", "path": str(tmp_path / "db")}],
        state_dir=str(tmp_path / "state"),
        notify={"urls": [webhook.url()], "retry_initial": "0.5s", "retry_max": "1s"},
    )
    daemon = start_daemon(config)
    wait_for(lambda: daemon.alerting.delivery.sent == 1, timeout=20)
    assert titles(webhook) == ["[FIRING] backup too small: db"]
    assert daemon.alerting.delivery.failed == 0


# --- 5. no secret in any log line ------------------------------------------------------------


TOKEN = "5bf6c2ad7f1f4f399a5fe1f3c5c1b2a0"


SLACK = "TIiajkdnlazkcOXrIdevi7FQ"


def test_no_secret_in_debug_logs(tmp_path: Path, webhook) -> None:
    write_backup(tmp_path / "a" / "backup-1.db", 10)
    data = base_config(tmp_path, [{"path": str(tmp_path / "a")}])
    data["log_level"] = "debug"
    data["notify"]["urls"] = [
        f"slack://T1JJ3T3L2/A1BRTD4JD/{SLACK}/#backups",
        f"json://127.0.0.1:{webhook.port}/hook?token={TOKEN}x",
    ]
    data["notify"]["heartbeat"] = {"url": f"http://127.0.0.1:{webhook.port}/ping/{TOKEN}"}
    config = write_config(tmp_path / "c.yml", data)
    daemon = DaemonProcess(config, tmp_path / "log").start()
    try:
        wait_for(lambda: len(webhook.requests) >= 2)  # a ping and the alert have gone out
        wait_for(lambda: "slack" in daemon.logs().lower() and "sending" in daemon.logs())
    finally:
        daemon.stop()
    logs = daemon.logs()
    assert "http://127.0.0.1" in logs  # the URLs are logged, redacted
    for secret in (TOKEN, SLACK, TOKEN[:4], SLACK[-4:]):
        assert secret not in logs
    checked = run_cli("config", "check", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    for secret in (TOKEN, SLACK, SLACK[:3]):
        assert secret not in checked.stdout + checked.stderr


# --- 6. HTTP ---------------------------------------------------------------------------------


def request(
    url: str, method: str = "GET", auth: tuple[str, str] | None = None
) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, method=method)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_head_on_every_route(tmp_path: Path, start_daemon) -> None:
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    daemon = start_daemon(make_config(targets=[{"path": str(tmp_path / "a")}]))
    base = daemon.url.removesuffix("/metrics")
    for path in ("/metrics", "/", "/api/v1/targets", "/api/v1/alerts", "/healthz"):
        get_status, body, _ = request(base + path)
        status, empty, headers = request(base + path, "HEAD")
        assert (status, empty) == (get_status, b""), path
        assert get_status == 200
        # The GET's length (a live document: its ages may differ by a digit or two).
        assert abs(int(headers["Content-Length"]) - len(body)) < 64


def test_basic_auth_does_not_tell_which_users_exist(tmp_path: Path, start_daemon) -> None:
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    daemon = start_daemon(
        make_config(targets=[{"path": str(tmp_path / "a")}], web_config_file=str(web))
    )

    def median_time(user: str) -> float:
        times = []
        for _ in range(5):
            started = time.monotonic()
            assert request(daemon.url, auth=(user, "wrong"))[0] == 401
            times.append(time.monotonic() - started)
        return statistics.median(times)

    known, unknown = median_time("prometheus"), median_time("nobody")
    assert abs(known - unknown) < 0.02 + 0.25 * known, (known, unknown)
    assert request(daemon.url, auth=("prometheus", "x" * 172))[0] == 401  # 100 bytes over
    assert request(daemon.url, auth=("nobody", "x" * 172))[0] == 401
    assert request(daemon.url, auth=("prometheus", "right"))[0] == 200


def test_healthz_degrades_on_stuck_delivery_without_heartbeat(
    tmp_path: Path, start_daemon, webhook
) -> None:
    webhook.mode = "fail"
    write_backup(tmp_path / "a" / "backup-1.db", 10)
    config = make_config(
        targets=[{"path": str(tmp_path / "a")}],
        state_dir=str(tmp_path / "state"),
        notify={"urls": [webhook.url()], "max_queue_age": "1s", "retry_initial": "0.2s"},
    )
    daemon = start_daemon(config)
    health = daemon.url.replace("/metrics", "/healthz")
    wait_for(lambda: request(health)[0] == 503, timeout=15)
    assert request(health)[1] == b"a notification has been undeliverable for too long\n"


# --- 7. bounded verification -----------------------------------------------------------------


def sqlite_bomb(path: Path, inflated: int) -> Path:
    """A gzip file holding a SQLite header and then ``inflated`` bytes of zeros."""
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b"SQLite format 3\x00" + bytes(1024 - 16))
        for _ in range(inflated >> 20):
            out.write(chunk)
    return path


def test_gzip_bomb_on_a_small_tmpdir_cannot_be_verified_but_is_not_broken(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "tmp", "16m") as small:
        bomb = sqlite_bomb(tmp_path / "backup-1.db.gz", 64 << 20)
        took, result = timed_cli("verify", str(bomb), env={**os.environ, "TMPDIR": str(small)})
        assert result.returncode == 3, result.stdout
        assert "ERROR" in result.stdout
        assert "cannot verify: no space for a temporary copy" in result.stdout
        assert took < 20
        assert list(small.iterdir()) == []  # the private copy is gone
        bounded = run_cli("verify", "--max-bytes", "8MiB", str(bomb))
        assert bounded.returncode == 1
        assert "more than 8388608 bytes inside (verify_max_bytes)" in bounded.stdout


def test_zip_member_bomb_obeys_the_timeout(tmp_path: Path) -> None:
    bomb = tmp_path / "backup.zip"
    chunk = bytes(1 << 20)
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("huge.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(3072):
            member.write(chunk)
    took, result = timed_cli("verify", "--timeout", "1s", str(bomb))
    assert result.returncode == 1, result.stdout
    assert "timed out after 1s" in result.stdout
    assert took < 8


def test_a_sqlite_backup_with_a_non_utf8_name(tmp_path: Path, start_daemon) -> None:
    backups = tmp_path / "b"
    backups.mkdir()
    raw = os.fsencode(str(backups)) + b"/backup-\xff\x1b[31m.db"
    make_db(Path(os.fsdecode(raw)))
    os.utime(raw, (time.time() - 3600,) * 2)
    result = run_cli("verify", os.fsdecode(raw))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backup-\\xff\\x1b[31m.db: sqlite ok" in result.stdout
    table = run_cli("check", "-t", str(backups))
    assert "\x1b" not in table.stdout  # nothing raw reaches the terminal
    assert "backup-\\xff\\x1b[31m.db" in table.stdout
    daemon = start_daemon(
        make_config(targets=[{"name": "b", "path": str(backups), "verify": "sqlite"}])
    )
    wait_for(lambda: value(scrape(daemon.url), "backup_verify_ok", target="b") == 1)


# --- 8. long paths are counted; memory comes back -------------------------------------------


def test_paths_longer_than_path_max_are_counted(tmp_path: Path, start_daemon) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    write_backup(root / "backup-top.db", 4096)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(20):  # 20 x 250 characters: past PATH_MAX (4096)
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("backup-deep.db", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"x" * 4096)
    finally:
        os.close(fd)
    daemon = start_daemon(
        make_config(targets=[{"name": "d", "path": str(root), "recursive": True}])
    )
    s = scrape(daemon.url)
    assert value(s, "backup_count", target="d") >= 1
    assert value(s, "backup_unreadable_entries", target="d") >= 1
    subprocess.run(["rm", "-rf", str(root)], check=True, timeout=60)
