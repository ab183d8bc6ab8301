"""Verification on real SQLite files and real archives; the backups are never modified."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from exporter.config import Config
from exporter.verify.content import VerifyOptions, verify_file
from tests.conftest import make_config, parse_samples, require_tool, scrape, value, wait_for
from tests.helpers import KEPT_LINT, ROOT, make_db, promtool_problems, run_cli
from tests.peers import WebhookReceiver

EXAMPLE = ROOT / "examples" / "quota-proxy.yml"


def listing(directory: Path) -> dict[str, tuple[bytes, float]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).digest(), p.stat().st_mtime)
        for p in sorted(directory.iterdir())
    }


def check(path: Path, **options) -> tuple[bool | None, str]:
    result = verify_file(str(path), VerifyOptions(**options))
    return (None, "") if result is None else (result.ok, result.reason)


@pytest.fixture
def good_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "backup-2026-05-28-02-00-00.db")


def test_healthy_sqlite_passes_and_is_untouched(tmp_path: Path, good_db: Path) -> None:
    before = listing(tmp_path)
    ok, reason = check(good_db, query="SELECT COUNT(*) FROM api_keys")
    assert ok, reason
    assert reason == "sqlite ok"
    ok, _ = check(good_db, sqlite_check="quick_check")
    assert ok
    assert listing(tmp_path) == before  # same bytes, same mtimes, no -journal/-wal files


def test_broken_sqlite_fails_with_the_reason(tmp_path: Path, good_db: Path) -> None:
    data = good_db.read_bytes()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.db"
    page = 4096
    middle = (len(data) // page // 2) * page
    corrupt.write_bytes(data[:middle] + b"\xa5" * page + data[middle + page :])
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 100)
    before = listing(tmp_path)

    ok, reason = check(truncated)
    assert not ok
    assert "malformed" in reason or "integrity_check" in reason
    ok, reason = check(corrupt)
    assert not ok
    assert "malformed" in reason or "integrity_check" in reason
    assert check(text) == (False, "not a SQLite database (no SQLite header)")
    ok, reason = check(good_db, query="SELECT COUNT(*) FROM missing_table")
    assert not ok
    assert reason == "no such table: missing_table"
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("suffix", "opener"),
    [(".gz", gzip.open), (".xz", lzma.open), (".bz2", bz2.open)],
)
def test_compressed_databases(tmp_path: Path, good_db: Path, suffix: str, opener) -> None:
    packed = tmp_path / (good_db.name + suffix)
    with opener(packed, "wb") as handle:
        handle.write(good_db.read_bytes())
    ok, reason = check(packed, query="SELECT COUNT(*) FROM api_keys")
    assert ok, reason
    assert reason.endswith("+sqlite ok")
    # A corrupt compressed stream: flip bytes in the middle.
    data = bytearray(packed.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    broken = tmp_path / ("broken" + good_db.name + suffix)
    broken.write_bytes(bytes(data))
    ok, reason = check(broken)
    assert not ok, reason
    truncated = tmp_path / ("short" + good_db.name + suffix)
    truncated.write_bytes(packed.read_bytes()[: len(data) // 2])
    ok, reason = check(truncated)
    assert not ok
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("backup-monitor-verify-*")]
    assert leftovers == []


def test_archives(tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    tgz = tmp_path / "backup.tar.gz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo("data.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    assert check(tgz) == (True, "tar+gzip ok")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(tgz.read_bytes()[:-5000])
    ok, reason = check(bad)
    assert not ok
    assert reason.startswith("tar:")
    archive_zip = tmp_path / "backup.zip"
    with zipfile.ZipFile(archive_zip, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.bin", payload)
    assert check(archive_zip) == (True, "zip ok")
    data = bytearray(archive_zip.read_bytes())
    data[1000] ^= 0xFF  # inside the stored member: its CRC no longer matches
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(bytes(data))
    assert check(bad_zip) == (False, "zip: CRC check failed for member data.bin")
    not_archive = tmp_path / "fake.tar.gz"
    not_archive.write_text("hello")
    ok, reason = check(not_archive)
    assert not ok
    assert "not a recognised archive" in reason


def test_checksums(tmp_path: Path, good_db: Path) -> None:
    digest = hashlib.sha256(good_db.read_bytes()).hexdigest()
    sidecar = Path(str(good_db) + ".sha256")
    sidecar.write_text(f"{digest}  {good_db.name}\n")
    assert check(good_db) == (True, "sqlite and sha256 ok")
    sidecar.write_text("0" * 64 + "\n")
    assert check(good_db) == (False, "sha256 mismatch with its checksum file")
    sidecar.unlink()
    (tmp_path / "SHA256SUMS").write_text(f"{digest} *{good_db.name}\n")
    assert check(good_db, kind="checksum") == (True, "sha256 ok")
    plain = tmp_path / "dump.bin"
    plain.write_bytes(b"\x00" * 100)
    assert check(plain) == (None, "")  # auto: nothing applies
    assert check(plain, kind="checksum") == (False, "no checksum found (FILE.sha256 or SHA256SUMS)")


def test_verify_command(tmp_path: Path, good_db: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("nope")
    result = run_cli("verify", str(good_db))
    assert result.returncode == 0
    assert result.stdout.startswith(f"ok    {good_db}: sqlite ok (")
    result = run_cli("verify", str(good_db), str(bad), "--query", "SELECT 1")
    assert result.returncode == 1
    assert result.stdout.splitlines()[1] == f"FAIL  {bad}: not a SQLite database (no SQLite header)"


def test_slow_backup_is_verified_only_once_settled(tmp_path: Path, start_daemon) -> None:
    receiver = WebhookReceiver()
    target_dir = tmp_path / "db"
    target_dir.mkdir()
    make_db(tmp_path / "source.db")
    data = (tmp_path / "source.db").read_bytes()
    config = make_config(
        targets=[
            {"name": "db", "path": str(target_dir), "settle": "1s", "min_size": 1, "verify": "auto"}
        ],
        notify={"urls": [receiver.url()]},
    )
    try:
        daemon = start_daemon(config)
        index = daemon.targets[0].index
        path = target_dir / "backup-1.db"
        # Written slowly: a chunk every 0.3 s for about 3 s.
        chunks = [
            data[i : i + len(data) // 10 + 1] for i in range(0, len(data), len(data) // 10 + 1)
        ]
        with open(path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                assert index.snapshot().verification is None, "verified while being written"
                time.sleep(0.3)  # the writer's pace, not a wait for the daemon
        wait_for(lambda: index.snapshot().verification is not None, timeout=10)
        assert index.snapshot().verification.ok
        s = scrape(daemon.url)
        assert value(s, "backup_verify_ok", target="db") == 1
        assert value(s, "backup_monitor_verifications_total", result="ok") == 1
        # A corrupt new backup: the verify check fires with the reason in the body.
        bad = target_dir / "backup-2.db"
        bad.write_bytes(data[: len(data) // 3])
        future = time.time() + 1
        os.utime(bad, (future, future))
        wait_for(
            lambda: value(scrape(daemon.url), "backup_verify_ok", target="db") == 0, timeout=10
        )
        wait_for(lambda: any("verification" in r["title"] for r in receiver.requests), timeout=10)
        fired = next(r for r in receiver.requests if "verification" in r["title"])
        assert fired["title"] == "[FIRING] backup failed verification: db"
        assert "backup-2.db: " in fired["message"]
        assert "malformed" in fired["message"] or "integrity_check" in fired["message"]
    finally:
        receiver.stop()


def example_config(directory: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["targets"][0]["path"] = str(directory)
    path = directory.parent / "quota-proxy.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_quota_proxy_example_publishes_legacy_names(tmp_path: Path) -> None:
    Config.model_validate(yaml.safe_load(EXAMPLE.read_text()))  # valid as shipped
    checked = run_cli("config", "check", "--config", str(EXAMPLE))
    assert checked.returncode == 0, checked.stderr
    backups = tmp_path / "backups"
    backups.mkdir()
    now = time.time()
    for day in range(5):
        path = make_db(backups / f"backup-2026-05-{20 + day:02d}-02-00-00.db")
        os.utime(path, (now - (5 - day) * 86400 + 3600, now - (5 - day) * 86400 + 3600))
    gz = backups / "backup-2026-05-25-02-00-00.db.gz"
    gz.write_bytes(gzip.compress((backups / "backup-2026-05-24-02-00-00.db").read_bytes()))
    os.utime(gz, (now - 600, now - 600))
    for path in backups.iterdir():  # the guide's 600/700, which the example checks
        path.chmod(0o600)
    backups.chmod(0o700)
    textfile = tmp_path / "backup.prom"
    result = run_cli("check", "--config", str(example_config(backups)), "--textfile", str(textfile))
    assert result.returncode == 0, result.stdout + result.stderr
    samples = parse_samples(textfile.read_text())
    assert value(samples, "quota_proxy_backup_count", target="quota-proxy") == 6
    age = value(samples, "quota_proxy_backup_age_seconds", target="quota-proxy")
    assert 600 <= age < 700
    assert value(samples, "quota_proxy_backup_verify_ok", target="quota-proxy") == 1
    assert "verify" in result.stdout
    # A one-shot run has no watcher and no verifier pool: none of the daemon's own series.
    names = {name for name, _labels in samples}
    assert not {n for n in names if "watch" in n or "verifications" in n}, names


def test_textfile_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    backups = tmp_path / "backups"
    backups.mkdir()
    make_db(backups / "backup-1.db")
    os.utime(backups / "backup-1.db", (time.time() - 60, time.time() - 60))
    textfile = tmp_path / "out.prom"
    result = run_cli("check", "-t", str(backups), "--textfile", str(textfile))
    assert result.returncode == 0, result.stdout
    assert not list(tmp_path.glob(".backup-monitor-*"))  # no temporary file left behind
    assert promtool_problems(promtool, textfile.read_text()) == [KEPT_LINT]


def test_zstd_without_the_optional_package_says_so(tmp_path: Path) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        path = tmp_path / "backup.db.zst"
        path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 100)
        assert check(path) == (
            False,
            "zstd backup: install the optional 'zstandard' package to verify it",
        )
    else:
        pytest.skip("zstandard is installed: the message for its absence cannot be shown")


def test_progress_bar_on_a_terminal_only(tmp_path: Path, good_db: Path) -> None:
    import shutil
    import subprocess
    import sys

    script = shutil.which("script")
    if script is None:
        pytest.skip("needs script (util-linux) for a pseudo-terminal")
    files = [str(good_db)] * 3
    command = " ".join([sys.executable, "-m", "exporter", "verify", *files])
    on_tty = subprocess.run(
        [script, "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert on_tty.returncode == 0
    assert "verifying" in on_tty.stdout
    plain = run_cli("verify", *files)
    assert "verifying" not in plain.stdout + plain.stderr
