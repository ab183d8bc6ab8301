"""Capacity, permissions and encryption in a running daemon, on real files and a real
small filesystem: each check fails and recovers within the detection latency."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyrage
import pytest

from tests.conftest import make_config, scrape, small_tmpfs, value, wait_for, write_backup
from tests.helpers import base_config, make_db, run_cli, write_config


def verdict(daemon, check: str) -> tuple[bool, str] | None:
    evaluation = daemon.targets[0].evaluation
    result = evaluation.results.get(check) if evaluation else None
    return None if result is None else (result.ok, result.reason)


def failing(daemon, check: str) -> bool:
    found = verdict(daemon, check)
    return found is not None and not found[0]


def passing(daemon, check: str) -> bool:
    found = verdict(daemon, check)
    return found is not None and found[0]


@pytest.fixture
def small_fs(tmp_path: Path):
    with small_tmpfs(tmp_path / "small", "32m") as mount:
        yield mount


def test_capacity_fails_as_the_disk_fills_and_recovers_when_freed(
    small_fs: Path, start_daemon
) -> None:
    target = {"name": "q", "path": str(small_fs), "min_free": "10MiB", "min_free_runs": 2}
    daemon = start_daemon(make_config(targets=[target]))
    wait_for(lambda: passing(daemon, "capacity"))
    size = 4 * 1024**2
    written = []
    for i in range(6):  # 24 MiB of 32: 8 left, below min_free
        written.append(write_backup(small_fs / f"backup-{i}.db", size))
    wait_for(lambda: failing(daemon, "capacity"), timeout=10)
    reason = verdict(daemon, "capacity")[1]
    assert "(min_free 10.0 MiB)" in reason
    samples = scrape(daemon.url)
    avail = value(samples, "backup_filesystem_avail_bytes", target="q")
    assert avail == pytest.approx(os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize)
    assert value(samples, "backup_filesystem_size_bytes", target="q") == 32 * 1024**2
    assert value(samples, "backup_capacity_runs_left", target="q") == pytest.approx(avail / size)
    for path in written[:3]:
        path.unlink()
    wait_for(lambda: passing(daemon, "capacity"), timeout=10)


def test_a_chmod_is_followed_without_a_rescan(tmp_path: Path, start_daemon) -> None:
    backups = tmp_path / "backups"
    backup = write_backup(backups / "backup-1.db", 4096)
    backup.chmod(0o600)
    backups.chmod(0o700)
    target = {"name": "q", "path": str(backups), "file_mode": "0600", "dir_mode": "0700"}
    daemon = start_daemon(make_config(targets=[target]))  # rescan_interval 1h
    wait_for(lambda: passing(daemon, "permissions"))
    scans = daemon.targets[0].index.snapshot().scans
    backup.chmod(0o644)
    wait_for(lambda: failing(daemon, "permissions"), timeout=5)
    assert verdict(daemon, "permissions")[1] == (
        "1 path breaks the permission policy: backup-1.db: mode 0644 (max 0600)"
    )
    assert value(scrape(daemon.url), "backup_insecure_files", target="q") == 1
    backup.chmod(0o600)
    wait_for(lambda: passing(daemon, "permissions"), timeout=5)
    backups.chmod(0o755)  # the directory: an attribute event on the root
    wait_for(lambda: failing(daemon, "permissions"), timeout=5)
    assert ".: mode 0755 (max 0700)" in verdict(daemon, "permissions")[1]
    backups.chmod(0o700)
    wait_for(lambda: passing(daemon, "permissions"), timeout=5)
    # A new backup written with a loose umask is a finding at once.
    loose = write_backup(backups / "backup-2.db", 4096)
    loose.chmod(0o666)
    wait_for(lambda: failing(daemon, "permissions"), timeout=5)
    assert daemon.targets[0].index.snapshot().scans <= scans + 2  # the root's chmod only


def test_a_plaintext_backup_in_an_encrypted_target_fails(tmp_path: Path, start_daemon) -> None:
    key = pyrage.x25519.Identity.generate()
    backups = tmp_path / "backups"
    backups.mkdir()
    sealed = backups / "backup-1.db.age"
    sealed.write_bytes(
        pyrage.encrypt(make_db(tmp_path / "plain.db").read_bytes(), [key.to_public()])
    )
    os.utime(sealed, (sealed.stat().st_mtime - 60,) * 2)
    target = {"name": "q", "path": str(backups), "encryption": "required"}
    daemon = start_daemon(make_config(targets=[target]))
    wait_for(lambda: passing(daemon, "encryption") and "age" in verdict(daemon, "encryption")[1])
    # The script lost its encryption step: a plaintext dump arrives, named like the others.
    (backups / "backup-2.db.age").write_bytes(make_db(tmp_path / "plain2.db").read_bytes())
    wait_for(lambda: failing(daemon, "encryption"), timeout=5)
    assert verdict(daemon, "encryption")[1] == "backup-2.db.age: SQLite database in plaintext"


def test_the_identity_is_a_secret(tmp_path: Path, start_daemon, caplog) -> None:
    key = pyrage.x25519.Identity.generate()
    identity = tmp_path / "age.key"
    identity.write_text(f"{key}\n")
    identity.chmod(0o644)
    backups = tmp_path / "backups"
    backups.mkdir()
    sealed = backups / "backup-1.db.age"
    sealed.write_bytes(
        pyrage.encrypt(make_db(tmp_path / "plain.db").read_bytes(), [key.to_public()])
    )
    target = {
        "name": "q",
        "path": str(backups),
        "verify": "auto",
        "decrypt_identity": str(identity),
    }
    config = write_config(tmp_path / "config.yml", base_config(tmp_path, [target]))
    shown = run_cli("config", "check", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert str(key) not in shown.stdout + shown.stderr
    checked = run_cli("check", "--config", str(config))
    assert str(key) not in checked.stdout + checked.stderr
    with caplog.at_level(logging.DEBUG):
        daemon = start_daemon(make_config(targets=[{**target, "verify": "auto"}]))
        wait_for(lambda: daemon.targets[0].index.snapshot().verification is not None)
    verification = daemon.targets[0].index.snapshot().verification
    assert verification.ok, verification.reason
    assert verification.method == "age decrypted+sqlite"
    assert "readable by others (mode 0644): chmod 600 it" in caplog.text
    assert str(key) not in caplog.text
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("backup-monitor-verify-*")]
