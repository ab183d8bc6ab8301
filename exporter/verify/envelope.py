"""Encrypted backups, recognised by their first bytes, not their names.

- age: ``age-encryption.org/v1`` (binary) or ``-----BEGIN AGE ENCRYPTED FILE-----``;
- OpenPGP: a public-key or symmetric-key session key packet first (binary), or
  ``-----BEGIN PGP MESSAGE-----``;
- ``openssl enc``: ``Salted__`` and an 8-byte salt.

Without a key, verification checks the envelope (for age, the header's structure: its
MAC needs the identity). With ``decrypt_identity`` (an age identity file) an age backup
is decrypted as a stream, within the verification's time and byte budget, into the
content checks (a SQLite database lands in a private temporary file, removed after).
"""

from __future__ import annotations

import base64
import binascii
from typing import BinaryIO

from exporter.index import Envelope
from exporter.sources.listing import open_regular

AGE = b"age-encryption.org/v1\n"
AGE_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
PGP_ARMOR = b"-----BEGIN PGP MESSAGE-----"
OPENSSL = b"Salted__"
# The OpenPGP packets an encrypted message starts with, by tag, and their versions: 1 a
# public-key, 3 a symmetric-key encrypted session key.
_PGP_VERSIONS = {1: (3, 6), 3: (4, 5, 6)}
# An age header holds a few stanzas; a longer one is not a header.
MAX_AGE_HEADER = 64 * 1024

# (first bytes, encryption or None, what the data looks like)
_MAGICS = (
    (AGE, "age", "age-encrypted data"),
    (AGE_ARMOR, "age", "age-encrypted data (armored)"),
    (PGP_ARMOR, "openpgp", "OpenPGP message (armored)"),
    (OPENSSL, "openssl", "openssl enc data"),
    (b"SQLite format 3\x00", None, "SQLite database"),
    (b"\x1f\x8b", None, "gzip data"),
    (b"BZh", None, "bzip2 data"),
    (b"\xfd7zXZ\x00", None, "xz data"),
    (b"\x28\xb5\x2f\xfd", None, "zstd data"),
    (b"PK\x03\x04", None, "zip archive"),
)


def encryption_of(head: bytes) -> tuple[str | None, str]:
    """(age | openpgp | openssl | None, what the data looks like) from its first bytes."""
    for magic, encryption, what in _MAGICS:
        if head.startswith(magic):
            return encryption, what
    if _openpgp_packet(head):
        return "openpgp", "OpenPGP message"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return None, "tar archive"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head[:512]):
        return None, "text"
    return None, "unrecognised data"


def _openpgp_packet(head: bytes) -> bool:
    """Whether ``head`` starts with a session key packet (its header and version byte
    parsed: one byte alone would take 3 % of random data for OpenPGP)."""
    if len(head) < 4:
        return False
    first = head[0]
    if first & 0xC0 == 0xC0:  # new format: tag in the low 6 bits, then the length
        tag, octet = first & 0x3F, head[1]
        body = 2 if octet < 192 else 3 if octet < 224 else 6 if octet == 255 else None
    elif first & 0xC0 == 0x80:  # old format: tag in bits 2-5, the length type in 0-1
        tag = (first >> 2) & 0x0F
        body = {0: 2, 1: 3, 2: 5}.get(first & 0x03)
    else:
        return False
    if body is None or len(head) <= body:
        return False
    return head[body] in _PGP_VERSIONS.get(tag, ())


def sniff(path: str, name: str, size: int, stamp: float) -> Envelope | None:
    """What the backup at ``path`` is, from its first 512 bytes (None: unreadable)."""
    try:
        with open_regular(path) as handle:
            head = handle.read(512)
    except OSError:
        return None
    encryption, looks_like = encryption_of(head)
    return Envelope(name, size, stamp, encryption, looks_like)


class EnvelopeBroken(Exception):
    """The envelope itself is damaged (the content cannot be reached even with a key)."""


def check_envelope(handle: BinaryIO, encryption: str) -> str:
    """Check what can be checked without a key; returns what was checked."""
    if encryption == "age":
        head = handle.read(MAX_AGE_HEADER)
        if head.startswith(AGE_ARMOR):
            return "age envelope (armored; the MAC needs decrypt_identity)"
        _check_age_header(head)
        return "age header (stanzas and MAC line; the MAC needs decrypt_identity)"
    if encryption == "openssl":
        if len(handle.read(32)) < 32:
            raise EnvelopeBroken("openssl enc: no data after the salt")
        return "openssl enc header (salt and data present)"
    head = handle.read(64)
    if len(head) < 16:
        raise EnvelopeBroken("OpenPGP: truncated")
    return "OpenPGP packet header"


def _check_age_header(head: bytes) -> None:
    lines = head.split(b"\n")
    stanzas = 0
    for line in lines[1:]:
        if line.startswith(b"-> "):
            stanzas += 1
        elif line.startswith(b"--- "):
            if stanzas == 0:
                raise EnvelopeBroken("age: no recipient stanza")
            try:
                mac = base64.b64decode(line[4:].strip() + b"=", validate=False)
            except binascii.Error:
                raise EnvelopeBroken("age: the header MAC is not base64") from None
            if len(mac) != 32:
                raise EnvelopeBroken("age: the header MAC is not 32 bytes")
            return
    raise EnvelopeBroken("age: the header does not end (truncated or not age)")


def decrypt_age(source: BinaryIO, identity_file: str, out: BinaryIO) -> None:
    """Decrypt an age stream into ``out`` (streamed: memory stays bounded)."""
    try:
        import pyrage
    except ImportError:
        raise RuntimeError("install the optional 'pyrage' package to decrypt age") from None
    with open(identity_file, encoding="utf-8") as handle:
        keys = [
            line.strip()
            for line in handle
            if line.strip() and not line.startswith("#") and line.strip().startswith("AGE-")
        ]
    try:
        identities = [pyrage.x25519.Identity.from_str(key) for key in keys]
    except pyrage.IdentityError as exc:
        raise ValueError(f"decrypt_identity is not an age identity file ({exc})") from None
    if not identities:
        raise ValueError("decrypt_identity holds no AGE-SECRET-KEY line")
    try:
        pyrage.decrypt_io(source, out, identities)
    except (OSError, pyrage.DecryptError) as exc:
        raise EnvelopeBroken(f"age: {exc} (wrong identity, or damaged)") from None
