"""Is this backup really restorable? Content checks that never modify the file.

- SQLite (found by its header, not its name): opened with ``mode=ro&immutable=1``, so
  no lock, journal or WAL file is ever created next to it; ``PRAGMA integrity_check``
  (or ``quick_check``) and an optional query that must return a row.
- Compressed files (gzip, bzip2, xz, zstd with the optional ``zstandard`` package):
  read through completely, which checks their CRCs; a compressed SQLite database is
  streamed into a temporary file in a private directory (always removed) and checked.
- tar (plain or compressed): read through member by member; zip: every member read.
- Checksums: a sidecar ``FILE.sha256`` or a ``SHA256SUMS`` in the directory.

Bounded everywhere: only regular files are ever opened (a FIFO or a device named like a
backup or a sidecar is refused, never waited on), sidecars are read up to 1 MiB, every
reader checks the deadline and counts decompressed bytes (``max_bytes``) between chunks,
inside archive members too, and a long SQLite check is interrupted. What stops a check
without judging the backup (no space for a temporary copy, a file that cannot be read)
is a ``VerifyUnavailable``: "cannot verify", never "broken".
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import IO, BinaryIO

from exporter.sources.listing import NotRegular, open_regular
from exporter.units import printable
from exporter.verify.envelope import EnvelopeBroken, check_envelope, decrypt_age, encryption_of

SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 1024 * 1024
KINDS = ("auto", "sqlite", "archive", "checksum", "none")
MAX_SIDECAR = 1 << 20
DEFAULT_MAX_BYTES = 64 * 1024**3
# Left free on the temporary directory's filesystem while a copy is written: this, or
# 5 % of a smaller filesystem.
SPACE_RESERVE = 64 * 1024**2
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

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


class VerifyUnavailable(Exception):
    """The check could not be done (no space, unreadable): no verdict on the backup."""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str
    method: str  # what was checked: "sqlite", "gzip+sqlite", "tar.gz", "sha256"...
    duration: float
    error: bool = False  # True: could not be verified (``ok`` is then False, no verdict)


@dataclass(frozen=True)
class VerifyOptions:
    kind: str = "auto"
    sqlite_check: str = "integrity_check"  # or quick_check
    query: str | None = None
    timeout: float = 60.0
    max_bytes: int = DEFAULT_MAX_BYTES  # decompressed bytes read at most
    identity: str | None = None  # an age identity file: encrypted backups are opened


class Budget:
    """The time and the decompressed bytes a verification may still use."""

    def __init__(self, seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.used = 0

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise VerifyTimeout(f"verification timed out after {self.seconds:g}s")

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def spend(self, count: int) -> None:
        self.check()
        self.used += count
        if self.used > self.max_bytes:
            raise VerifyError(
                f"more than {self.max_bytes} bytes inside (verify_max_bytes): "
                "a decompression bomb, or raise the limit"
            )


def _head(path: str, size: int = 512) -> bytes:
    with open_regular(path) as handle:
        return handle.read(size)


def compression_of(head: bytes) -> str | None:
    for name, magics in _COMPRESSED.items():
        if head.startswith(magics):
            return name
    return None


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def open_decompressed(path: str, compression: str) -> IO[bytes]:
    raw = open_regular(path)
    try:
        if compression == "gzip":
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        if compression == "bzip2":
            return bz2.BZ2File(raw, "rb")
        if compression == "xz":
            return lzma.LZMAFile(raw, "rb")
        try:
            import zstandard
        except ImportError:
            raise VerifyError(
                "zstd backup: install the optional 'zstandard' package to verify it"
            ) from None
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    except BaseException:
        raw.close()
        raise


class _Metered:
    """A read-only stream that spends the budget as it is read (tarfile reads through it)."""

    def __init__(self, stream: IO[bytes], budget: Budget) -> None:
        self.stream = stream
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.budget.spend(len(data))
        return data


def _chunks(stream: IO[bytes], budget: Budget) -> Iterator[bytes]:
    while True:
        budget.check()
        try:
            chunk = stream.read(CHUNK)
        except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile) as exc:
            raise VerifyError(_describe_stream_error(exc)) from None
        if not chunk:
            return
        budget.spend(len(chunk))
        yield chunk


def _describe_stream_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return f"truncated: {text}"
    if "CRC" in text or "crc" in text:
        return "CRC check failed"
    return text


def sqlite_uri(path: str, query: str) -> str:
    # fsencode: a name that is not UTF-8 (surrogate-escaped) is quoted byte by byte.
    return "file:" + urllib.parse.quote(os.fsencode(os.path.abspath(path))) + "?" + query


@contextlib.contextmanager
def bounded(
    conn: sqlite3.Connection,
    budget: Budget,
    label: str,
    failed: type[Exception] = VerifyError,
    timed_out: type[Exception] = VerifyTimeout,
) -> Iterator[sqlite3.Connection]:
    """A connection interrupted when the budget's time is up, and closed afterwards; its
    errors become ``failed`` (``timed_out`` for the interruption)."""
    timer = threading.Timer(budget.left(), conn.interrupt)
    timer.start()
    try:
        yield conn
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise timed_out(f"{label} timed out after {budget.seconds:g}s") from None
        raise failed(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise failed(str(exc)) from None
    finally:
        timer.cancel()
        conn.close()


def check_sqlite(path: str, options: VerifyOptions, budget: Budget) -> None:
    try:
        conn = sqlite3.connect(
            sqlite_uri(path, "mode=ro&immutable=1"), uri=True, timeout=1, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise VerifyError(str(exc)) from None
    with bounded(conn, budget, "verification"):
        pragma = "quick_check" if options.sqlite_check == "quick_check" else "integrity_check"
        rows = conn.execute(f"PRAGMA {pragma}").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in rows[:3])
            raise VerifyError(f"{pragma}: {problems}")
        if options.query:
            row = conn.execute(options.query).fetchone()
            if row is None:
                raise VerifyError(f"verify_query returned no row: {options.query}")


def room_in(directory: str) -> int:
    """Bytes a temporary copy may take there, leaving a reserve free."""
    st = os.statvfs(directory)
    reserve = min(SPACE_RESERVE, st.f_blocks * st.f_frsize // 20)
    return st.f_bavail * st.f_frsize - reserve


@contextlib.contextmanager
def private_copy(suffix: str, at_least: int) -> Iterator[tuple[BinaryIO, str, int]]:
    """A new file in a private (0700) temporary directory, removed with the directory
    afterwards: (handle, path, bytes that may be written). Refused when the temporary
    filesystem has not even ``at_least`` bytes free beyond a reserve."""
    directory = tempfile.mkdtemp(prefix="backup-monitor-verify-")
    try:
        room = room_in(directory)
        if room < at_least:
            raise VerifyUnavailable(
                f"no space for a temporary copy in {os.path.dirname(directory)}"
            )
        path = os.path.join(directory, "copy" + suffix)
        with open(path, "xb") as handle:
            yield handle, path, room
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sqlite_from_stream(
    path: str, compression: str, options: VerifyOptions, budget: Budget
) -> None:
    """Decompress into a private temporary copy and check it as a database."""
    with private_copy(".db", os.path.getsize(path)) as (out, tmp, room):
        written = 0
        try:
            with open_decompressed(path, compression) as stream:
                for chunk in _chunks(stream, budget):
                    written += len(chunk)
                    if written > room:
                        raise VerifyUnavailable("no space for a temporary copy")
                    out.write(chunk)
            out.flush()
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise VerifyUnavailable(f"no space for a temporary copy: {exc.strerror}") from None
            raise
        check_sqlite(tmp, options, budget)


def _read_through(path: str, compression: str, budget: Budget) -> None:
    with open_decompressed(path, compression) as stream:
        for _ in _chunks(stream, budget):
            pass


def _read_tar(path: str, compression: str | None, budget: Budget) -> int:
    """Read a tar stream member by member (the budget is spent inside members too)."""
    stream = open_decompressed(path, compression) if compression else open_regular(path)
    try:
        with tarfile.open(fileobj=_Metered(stream, budget), mode="r|") as archive:  # type: ignore[call-overload]
            count = 0
            for _member in archive:
                budget.check()
                count += 1
            return count
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise VerifyError(f"tar: {_describe_stream_error(exc)}") from None
    except OSError as exc:
        if isinstance(exc, NotRegular):
            raise
        raise VerifyError(f"tar: {_describe_stream_error(exc)}") from None
    finally:
        stream.close()


def _read_zip(path: str, budget: Budget) -> None:
    """Read every member through, which checks its CRC, within the budget."""
    try:
        with open_regular(path) as raw, zipfile.ZipFile(raw) as archive:
            for info in archive.infolist():
                try:
                    with archive.open(info) as member:
                        for _ in _chunks(member, budget):
                            pass
                except VerifyTimeout:
                    raise
                except VerifyError as exc:
                    raise VerifyError(f"{exc} for member {printable(info.filename)}") from None
    except VerifyTimeout:
        raise
    except VerifyError as exc:
        raise VerifyError(f"zip: {exc}") from None
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise VerifyError(f"zip: {_describe_stream_error(exc)}") from None
    except RuntimeError as exc:  # an encrypted member without its password
        raise VerifyError(f"zip: {exc}") from None


def expected_sha256(path: str) -> str | None:
    """The digest a sidecar FILE.sha256 or the directory's SHA256SUMS gives, if any.

    A sidecar that is not a regular file (a FIFO, a link to a device) is ignored, and
    only its first MiB is read.
    """
    name = os.path.basename(path)
    candidates = [
        path + ".sha256",
        path + ".sha256sum",
        os.path.join(os.path.dirname(path), "SHA256SUMS"),
    ]
    for candidate in candidates:
        try:
            with open_regular(candidate) as handle:
                text = handle.read(MAX_SIDECAR).decode("utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 1 and candidate != candidates[2]:
                return parts[0].lower()
            if parts[-1].lstrip("*") == name:
                return parts[0].lower()
    return None


def _check_sha256(path: str, expected: str, budget: Budget) -> None:
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for chunk in _chunks(handle, budget):
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


def _content(path: str, options: VerifyOptions, budget: Budget) -> str | None:  # noqa: PLR0911 - one return per file type
    """Check the content; returns what was checked, or None when nothing applies."""
    head = _head(path)
    encryption, _looks = encryption_of(head)
    if encryption is not None:
        return _encrypted(path, encryption, options, budget)
    kind = kind_by_name(path) if options.kind == "auto" else options.kind
    if head.startswith(SQLITE_MAGIC):
        if kind == "archive":
            raise VerifyError("a SQLite database, not an archive")
        check_sqlite(path, options, budget)
        return "sqlite"
    compression = compression_of(head)
    if compression:
        with open_decompressed(path, compression) as stream:
            try:
                inner = stream.read(512)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                raise VerifyError(_describe_stream_error(exc)) from None
        if inner.startswith(SQLITE_MAGIC) and kind != "archive":
            _sqlite_from_stream(path, compression, options, budget)
            return f"{compression}+sqlite"
        if kind == "sqlite":
            raise VerifyError(f"{compression} data that is not a SQLite database")
        if _is_tar(inner):
            _read_tar(path, compression, budget)
            return f"tar+{compression}"
        _read_through(path, compression, budget)
        return compression
    if kind == "sqlite":
        raise VerifyError("not a SQLite database (no SQLite header)")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _read_zip(path, budget)
        return "zip"
    if _is_tar(head):
        _read_tar(path, None, budget)
        return "tar"
    if kind == "archive":
        raise VerifyError("not a recognised archive (gzip, bzip2, xz, zstd, tar, zip)")
    return None


class _Bounded:
    """A writer that refuses to grow past ``room`` bytes (a private copy's free space)."""

    def __init__(self, out: BinaryIO, room: int) -> None:
        self.out = out
        self.room = room

    def write(self, data: bytes) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise VerifyUnavailable("no space for a temporary copy")
        return self.out.write(data)


_ENCRYPTED_SUFFIXES = (".age", ".gpg", ".pgp", ".asc", ".enc")


def _encrypted(path: str, encryption: str, options: VerifyOptions, budget: Budget) -> str:
    """An encrypted backup: its envelope without a key; with an age identity, decrypted
    (streamed, within the budget) into a private copy whose content is then checked."""
    if options.identity is None or encryption != "age":
        with open_regular(path) as handle:
            try:
                return check_envelope(handle, encryption)
            except EnvelopeBroken as exc:
                raise VerifyError(str(exc)) from None
    # Named like the backup without its encryption suffix: its extension says what to expect.
    name = os.path.basename(path)
    for suffix in _ENCRYPTED_SUFFIXES:
        name = name.removesuffix(suffix)
    with private_copy("-" + name, os.path.getsize(path)) as (out, plain, room):
        try:
            with open_regular(path) as source:
                decrypt_age(_Metered(source, budget), options.identity, _Bounded(out, room))  # type: ignore[arg-type]
            out.flush()
        except EnvelopeBroken as exc:
            raise VerifyError(str(exc)) from None
        except (ValueError, RuntimeError) as exc:
            raise VerifyUnavailable(str(exc)) from None
        inner = _content(plain, replace(options, identity=None), budget)
    return f"age decrypted+{inner or 'data'}"


def verify_file(
    path: str, options: VerifyOptions, clock: Callable[[], float] = time.monotonic
) -> VerifyResult | None:
    """Verify one file; None when ``auto`` finds nothing it can check."""
    started = clock()
    budget = Budget(options.timeout, options.max_bytes)
    methods: list[str] = []
    try:
        if options.kind in ("auto", "checksum"):
            expected = expected_sha256(path)
            if expected is not None:
                _check_sha256(path, expected, budget)
                methods.append("sha256")
            elif options.kind == "checksum":
                raise VerifyError("no checksum found (FILE.sha256 or SHA256SUMS)")
        if options.kind != "checksum":
            method = _content(path, options, budget)
            if method:
                methods.insert(0, method)
    except VerifyError as exc:
        return VerifyResult(False, str(exc), "+".join(methods) or options.kind, clock() - started)
    except VerifyUnavailable as exc:
        reason = f"cannot verify: {exc}"
        return VerifyResult(False, reason, options.kind, clock() - started, error=True)
    except OSError as exc:
        reason = f"cannot verify: {exc.strerror or exc}"
        return VerifyResult(False, reason, options.kind, clock() - started, error=True)
    if not methods:
        return None
    return VerifyResult(True, f"{' and '.join(methods)} ok", "+".join(methods), clock() - started)
