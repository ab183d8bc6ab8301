"""The guide's best practices as checks: free space, permissions, encryption (recognised
by content, verified inside with an age identity)."""

from __future__ import annotations

import os
from pathlib import Path

import pyrage
import pytest

from exporter.checks.table import check_capacity, check_encryption, check_permissions
from exporter.config import TargetConfig
from exporter.index import Envelope, Space
from exporter.sources.permissions import policy_of, sweep
from exporter.target import Target
from exporter.verify.content import VerifyOptions, verify_file
from exporter.verify.envelope import encryption_of, sniff
from tests.helpers import make_db

NOW = 1_780_000_000.0
GiB = 1024**3


def target(**options: object) -> Target:
    config = TargetConfig.model_validate(
        {"name": "q", "path": "/b", "settle": "0s", "verify": "none", **options}
    )
    return Target(config, lambda: NOW)


def test_capacity_counts_runs_left_and_names_the_numbers() -> None:
    t = target(min_free="2GiB", min_free_runs=30, retention="30d", schedule="0 2 * * *")
    files = {f"b{i}.db": (100 * 1024**2, NOW - i * 86400) for i in range(1, 8)}
    t.index.apply_scan(files, set(), NOW, 0.0)
    snap = t.index.snapshot()
    assert check_capacity(snap, t, NOW) is None  # not sampled yet
    t.index.set_space(Space(10 * GiB, 100 * GiB))
    result = check_capacity(t.index.snapshot(), t, NOW)
    assert result.ok
    assert result.figures["capacity_runs_left"] == pytest.approx(102.4)
    # 30 nightly runs ahead at 100 MiB, minus the 700 MiB already stored.
    assert result.figures["retention_need_bytes"] == 30 * 100 * 1024**2 - 700 * 1024**2
    t.index.set_space(Space(GiB, 100 * GiB))
    result = check_capacity(t.index.snapshot(), t, NOW)
    assert not result.ok
    assert result.reason == (
        "1.0 GiB free (min_free 2.0 GiB); room for 10.2 more backups of 100.0 MiB "
        "(min_free_runs 30)"
    )


def test_a_free_space_wobble_is_not_a_change_but_a_crossed_limit_is() -> None:
    t = target()
    t.index.set_space(Space(10 * GiB, 100 * GiB))
    version = t.index.snapshot().version
    t.index.set_space(Space(10 * GiB - 500 * 1024**2, 100 * GiB))  # under 1 % of the disk
    assert t.index.snapshot().version == version
    t.index.set_space(Space(9 * GiB, 100 * GiB))
    assert t.index.snapshot().version == version + 1
    limit = 9 * GiB - 1024  # min_free just under: a few KiB cross it
    t.index.set_space(Space(9 * GiB - 4096, 100 * GiB), (limit,))
    assert t.index.snapshot().version == version + 2


def test_permissions_name_what_is_too_open(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("one.db", "two.db"):
        (tmp_path / "b" / name).write_bytes(b"x")
        os.chmod(tmp_path / "b" / name, 0o600)
    os.chmod(tmp_path / "b", 0o700)
    t = target(path=str(tmp_path / "b"), file_mode="0600", dir_mode="0700")
    t.index.apply_scan({}, set(), NOW, 0.0)
    policy = policy_of(t.config)
    assert sweep(str(tmp_path / "b"), ["one.db", "two.db"], policy) == {}
    os.chmod(tmp_path / "b" / "two.db", 0o644)
    os.chmod(tmp_path / "b", 0o755)
    found = sweep(str(tmp_path / "b"), ["one.db", "two.db"], policy)
    assert found == {".": "mode 0755 (max 0700)", "two.db": "mode 0644 (max 0600)"}
    t.index.set_insecure(found)
    result = check_permissions(t.index.snapshot(), t, NOW)
    assert not result.ok
    assert result.reason == (
        "2 paths break the permission policy: .: mode 0755 (max 0700), two.db: mode 0644 (max 0600)"
    )
    assert result.figures == {"insecure_files": 2.0}
    assert target(path=str(tmp_path / "b")).policy is None  # no policy: nothing checked
    assert policy_of(TargetConfig.model_validate({"path": "/b", "owner": 0})).owner == 0


def test_encryption_is_recognised_by_content() -> None:
    assert encryption_of(b"age-encryption.org/v1\n-> X25519 abc\n") == ("age", "age-encrypted data")
    assert encryption_of(b"-----BEGIN AGE ENCRYPTED FILE-----\n")[0] == "age"
    assert encryption_of(b"-----BEGIN PGP MESSAGE-----\n")[0] == "openpgp"
    assert encryption_of(b"\x8c\x0d\x04\x09\x03\x02" + bytes(20))[0] == "openpgp"
    assert encryption_of(b"\xc1\x5e\x03" + bytes(20))[0] == "openpgp"
    assert encryption_of(b"\x8c\x0d\x99" + bytes(20))[0] is None  # no such version
    # Random data is not taken for OpenPGP because of its first byte.
    seen = [encryption_of(bytes([first, 7, 200, 1]) + bytes(20))[0] for first in range(256)]
    assert seen.count("openpgp") == 0
    assert encryption_of(b"Salted__12345678" + bytes(16))[0] == "openssl"
    assert encryption_of(b"SQLite format 3\x00" + bytes(100)) == (None, "SQLite database")
    assert encryption_of(b"\x1f\x8b\x08\x00") == (None, "gzip data")
    assert encryption_of(b"-- PostgreSQL database dump\n") == (None, "text")


def test_encryption_required_fails_a_plaintext_backup(tmp_path: Path) -> None:
    plain = make_db(tmp_path / "backup-1.db", rows=10)
    t = target(path=str(tmp_path), encryption="required")
    t.index.apply_scan({"backup-1.db": (plain.stat().st_size, NOW - 60)}, set(), NOW, 0.0)
    newest = t.index.snapshot().newest
    assert check_encryption(t.index.snapshot(), t, NOW).reason == "backup-1.db not examined yet"
    t.index.set_envelope(sniff(str(plain), newest.name, newest.size, newest.mtime))
    result = check_encryption(t.index.snapshot(), t, NOW)
    assert not result.ok
    assert result.reason == "backup-1.db: SQLite database in plaintext"
    t.index.set_envelope(Envelope(newest.name, newest.size, newest.mtime, "age", "age data"))
    assert check_encryption(t.index.snapshot(), t, NOW).ok


@pytest.fixture
def identity(tmp_path: Path) -> tuple[Path, pyrage.x25519.Identity]:
    key = pyrage.x25519.Identity.generate()
    path = tmp_path / "age.key"
    path.write_text(f"# created: now\n# public key: {key.to_public()}\n{key}\n")
    path.chmod(0o600)
    return path, key


def age_file(path: Path, data: bytes, key: pyrage.x25519.Identity) -> Path:
    path.write_bytes(pyrage.encrypt(data, [key.to_public()]))
    return path


def test_an_age_backup_is_verified_inside_with_the_identity(tmp_path: Path, identity) -> None:
    key_file, key = identity
    database = make_db(tmp_path / "plain.db", rows=2000).read_bytes()
    good = age_file(tmp_path / "backup-1.db.age", database, key)
    with_key = VerifyOptions(identity=str(key_file))
    result = verify_file(str(good), with_key)
    assert result.ok, result.reason
    assert result.method == "age decrypted+sqlite"
    # Without the key only the envelope can be checked, and the reason says so.
    envelope = verify_file(str(good), VerifyOptions())
    assert envelope.ok
    assert "MAC needs decrypt_identity" in envelope.reason
    # Garbage inside a database backup, a truncated file, another identity: broken.
    garbage = age_file(tmp_path / "backup-2.db.age", bytes(range(256)) * 200, key)
    assert "not a SQLite database" in verify_file(str(garbage), with_key).reason
    truncated = tmp_path / "backup-3.db.age"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert not verify_file(str(truncated), with_key).ok
    stranger = age_file(tmp_path / "backup-4.db.age", database, pyrage.x25519.Identity.generate())
    refused = verify_file(str(stranger), with_key)
    assert not refused.ok
    assert not refused.error
    header_only = tmp_path / "backup-5.db.age"
    header_only.write_bytes(good.read_bytes().split(b"\n---")[0])
    assert "does not end" in verify_file(str(header_only), VerifyOptions()).reason


def test_a_bad_identity_file_cannot_verify_and_shows_no_secret(tmp_path: Path, identity) -> None:
    _key_file, key = identity
    good = age_file(tmp_path / "backup-1.db.age", b"SQLite format 3\x00" + bytes(4096), key)
    wrong = tmp_path / "wrong.key"
    wrong.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    result = verify_file(str(good), VerifyOptions(identity=str(wrong)))
    assert result.error
    assert result.reason.startswith("cannot verify: decrypt_identity is not an age identity")
    assert "NOTAKEY" not in result.reason


def test_the_quota_proxy_example_applies_the_guides_practices() -> None:
    from exporter.config import load_config
    from tests.helpers import ROOT

    example = load_config(str(ROOT / "examples" / "quota-proxy.yml")).targets[0]
    assert (example.file_mode, example.dir_mode) == (0o600, 0o700)
    assert example.min_free_runs == 30


def test_the_verify_command_takes_an_identity(tmp_path: Path, identity) -> None:
    from click.testing import CliRunner

    from exporter.cli import main

    key_file, key = identity
    sealed = age_file(tmp_path / "backup-1.db.age", make_db(tmp_path / "p.db").read_bytes(), key)
    done = CliRunner().invoke(main, ["verify", "--identity", str(key_file), str(sealed)])
    assert done.exit_code == 0, done.output
    assert "age decrypted+sqlite" in done.output
    assert str(key) not in done.output
