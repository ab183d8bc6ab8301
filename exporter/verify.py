"""Is this backup really restorable? Content checks that never modify the file.

- SQLite (found by its header, not its name): opened with ``mode=ro&immutable=1``, so
  no lock, journal or WAL file is ever created next to it; ``PRAGMA integrity_check``
  (or ``quick_check``) and an optional query that must return a row.
- Compressed files (gzip, bzip2, xz, zstd with the optional ``zstandard`` package):
  read through completely, which checks their CRCs; a compressed SQLite database is
  streamed into a private temporary file (always removed) and checked as above.
- tar (plain or compressed): every member listed; zip: ``testzip``.
- Checksums: a sidecar ``FILE.sha256`` or a ``SHA256SUMS`` in the directory.

Every reader checks a deadline between chunks; a long SQLite check is interrupted.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import sqlite3
import tarfile
import tempfile
import threading
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 1024 * 1024
KINDS = ("auto", "sqlite", "archive", "checksum", "none")

_COMPRESSED: dict[str, tuple[bytes, ...]] = {
    "gzip": (b"\x1f\x8b",),
    "bzip2": (b"BZh",),
    "xz": (b"\xfd7zXZ\x00",),
    "zstd": (b"\x28\xb5\x2f\xfd",),
}


class VerifyError(Exception):
    """The backup is not restorable; the message says why, in a few words."""


class VerifyTimeout(VerifyError):
    pass


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str
    method: str  # what was checked: "sqlite", "gzip+sqlite", "tar.gz", "sha256"...
    duration: float


@dataclass(frozen=True)
class VerifyOptions:
    kind: str = "auto"
    sqlite_check: str = "integrity_check"  # or quick_check
    query: str | None = None
    timeout: float = 60.0


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise VerifyTimeout(f"verification timed out after {self.seconds:g}s")

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())


def _head(path: str, size: int = 512) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def compression_of(head: bytes) -> str | None:
    for name, magics in _COMPRESSED.items():
        if head.startswith(magics):
            return name
    return None


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def _open_decompressed(path: str, compression: str) -> IO[bytes]:
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bzip2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    try:
        import zstandard
    except ImportError:
        raise VerifyError(
            "zstd backup: install the optional 'zstandard' package to verify it"
        ) from None
    return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)


def _chunks(stream: IO[bytes], deadline: Deadline) -> Iterator[bytes]:
    while True:
        deadline.check()
        try:
            chunk = stream.read(CHUNK)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise VerifyError(_describe_stream_error(exc)) from None
        if not chunk:
            return
        yield chunk


def _describe_stream_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return f"truncated: {text}"
    if "CRC" in text or "crc" in text:
        return "CRC check failed"
    return text


def check_sqlite(path: str, options: VerifyOptions, deadline: Deadline) -> None:
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=1, check_same_thread=False)
    except sqlite3.Error as exc:
        raise VerifyError(str(exc)) from None
    timer = threading.Timer(deadline.left(), conn.interrupt)
    timer.start()
    try:
        pragma = "quick_check" if options.sqlite_check == "quick_check" else "integrity_check"
        rows = conn.execute(f"PRAGMA {pragma}").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in rows[:3])
            raise VerifyError(f"{pragma}: {problems}")
        if options.query:
            row = conn.execute(options.query).fetchone()
            if row is None:
                raise VerifyError(f"verify_query returned no row: {options.query}")
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise VerifyTimeout(f"verification timed out after {deadline.seconds:g}s") from None
        raise VerifyError(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise VerifyError(str(exc)) from None
    finally:
        timer.cancel()
        conn.close()


def _sqlite_from_stream(
    path: str, compression: str, options: VerifyOptions, deadline: Deadline
) -> None:
    """Decompress into a private temporary file (0600, always removed) and check it."""
    fd, tmp = tempfile.mkstemp(prefix="backup-monitor-verify-", suffix=".db")
    try:
        with os.fdopen(fd, "wb") as out, _open_decompressed(path, compression) as stream:
            for chunk in _chunks(stream, deadline):
                out.write(chunk)
        check_sqlite(tmp, options, deadline)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _read_through(path: str, compression: str, deadline: Deadline) -> None:
    with _open_decompressed(path, compression) as stream:
        for _ in _chunks(stream, deadline):
            pass


def _list_tar(path: str, deadline: Deadline) -> int:
    try:
        with tarfile.open(path, "r:*") as archive:
            count = 0
            for _member in archive:
                deadline.check()
                count += 1
            return count
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise VerifyError(f"tar: {_describe_stream_error(exc)}") from None


def _test_zip(path: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise VerifyError(f"zip: {exc}") from None
    if bad is not None:
        raise VerifyError(f"zip: CRC check failed for member {bad}")


def expected_sha256(path: str) -> str | None:
    """The digest a sidecar FILE.sha256 or the directory's SHA256SUMS gives, if any."""
    name = os.path.basename(path)
    candidates = [
        path + ".sha256",
        path + ".sha256sum",
        os.path.join(os.path.dirname(path), "SHA256SUMS"),
    ]
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 1 and candidate != candidates[2]:
                return parts[0].lower()
            if parts[-1].lstrip("*") == name:
                return parts[0].lower()
    return None


def _check_sha256(path: str, expected: str, deadline: Deadline) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in _chunks(handle, deadline):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise VerifyError("sha256 mismatch with its checksum file")


_COMPRESSED_SUFFIXES = (".gz", ".xz", ".bz2", ".zst", ".zstd")
_SQLITE_SUFFIXES = (".db", ".db3", ".sqlite", ".sqlite3")
_ARCHIVE_SUFFIXES = (".tar", ".tgz", ".tbz2", ".txz", ".zip", *_COMPRESSED_SUFFIXES)


def kind_by_name(path: str) -> str:
    """What ``auto`` expects from the extension: sqlite, archive, or auto (no opinion)."""
    name = os.path.basename(path).lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            stem = name.removesuffix(suffix)
            return "sqlite" if stem.endswith(_SQLITE_SUFFIXES) else "archive"
    if name.endswith(_SQLITE_SUFFIXES):
        return "sqlite"
    return "archive" if name.endswith(_ARCHIVE_SUFFIXES) else "auto"


def _content(path: str, options: VerifyOptions, deadline: Deadline) -> str | None:  # noqa: PLR0911 - one return per file type
    """Check the content; returns what was checked, or None when nothing applies."""
    head = _head(path)
    kind = kind_by_name(path) if options.kind == "auto" else options.kind
    if head.startswith(SQLITE_MAGIC):
        if kind == "archive":
            raise VerifyError("a SQLite database, not an archive")
        check_sqlite(path, options, deadline)
        return "sqlite"
    compression = compression_of(head)
    if compression:
        with _open_decompressed(path, compression) as stream:
            try:
                inner = stream.read(512)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                raise VerifyError(_describe_stream_error(exc)) from None
        if inner.startswith(SQLITE_MAGIC) and kind != "archive":
            _sqlite_from_stream(path, compression, options, deadline)
            return f"{compression}+sqlite"
        if kind == "sqlite":
            raise VerifyError(f"{compression} data that is not a SQLite database")
        if _is_tar(inner):
            _list_tar(path, deadline)
            return f"tar+{compression}"
        _read_through(path, compression, deadline)
        return compression
    if kind == "sqlite":
        raise VerifyError("not a SQLite database (no SQLite header)")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _test_zip(path)
        return "zip"
    if _is_tar(head):
        _list_tar(path, deadline)
        return "tar"
    if kind == "archive":
        raise VerifyError("not a recognised archive (gzip, bzip2, xz, zstd, tar, zip)")
    return None


def verify_file(
    path: str, options: VerifyOptions, clock: Callable[[], float] = time.monotonic
) -> VerifyResult | None:
    """Verify one file; None when ``auto`` finds nothing it can check."""
    started = clock()
    deadline = Deadline(options.timeout)
    methods: list[str] = []
    try:
        if options.kind in ("auto", "checksum"):
            expected = expected_sha256(path)
            if expected is not None:
                _check_sha256(path, expected, deadline)
                methods.append("sha256")
            elif options.kind == "checksum":
                raise VerifyError("no checksum found (FILE.sha256 or SHA256SUMS)")
        if options.kind != "checksum":
            method = _content(path, options, deadline)
            if method:
                methods.insert(0, method)
    except VerifyError as exc:
        return VerifyResult(False, str(exc), "+".join(methods) or options.kind, clock() - started)
    except OSError as exc:
        return VerifyResult(
            False, f"cannot read: {exc.strerror or exc}", options.kind, clock() - started
        )
    if not methods:
        return None
    return VerifyResult(True, f"{' and '.join(methods)} ok", "+".join(methods), clock() - started)
