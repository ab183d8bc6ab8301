"""Secrets never shown: URLs in a form without them, and a filter for every log record.

A notification or heartbeat URL carries its secrets in places that differ by service:
the password (``mailtos://user:PASSWORD@host``), the "host" (``tgram://BOT_TOKEN/...``),
path segments (``slack://T0/B0/TOKEN``, ``https://hc-ping.com/UUID``), query values
(``?token=``). The redacted form keeps what identifies the endpoint (scheme, a real host
name, the user, the recipients) and replaces everything else by ``…`` whole: no first or
last character of a secret survives. Every URL that a channel is built from registers its
secret parts with ``SECRETS``, which the log handlers use to scrub every record, whoever
logged it (apprise logs full URLs at debug level).
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable

from exporter.units import printable

MASK = "…"
# Query keys whose values name recipients or options, never credentials.
SAFE_KEYS = frozenset(
    {"to", "from", "cc", "bcc", "name", "mode", "format", "overflow", "smtp", "reply", "port"}
)
_HOST = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|localhost|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"\d{1,5}")
# Shorter parts are left in log lines: they would blank out ordinary words.
MIN_SECRET = 4


def _split_host(hostport: str) -> tuple[str, str]:
    host, sep, port = hostport.rpartition(":")
    if sep and _PORT.fullmatch(port) and not host.endswith(":"):
        return host, port
    return hostport, ""


def _parts(url: str) -> tuple[urllib.parse.SplitResult, str, str, str]:
    """(split URL, user, password, host:port or MASK)."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, _colon, password = userinfo.partition(":") if at else ("", "", "")
    host, port = _split_host(hostport)
    shown = hostport if _HOST.fullmatch(host) else MASK
    if shown != MASK and port:
        shown = f"{host}:{port}"
    return parts, user, password, shown


def redact_url(url: str) -> str:
    """``url`` with every part that can hold a secret replaced by ``…``."""
    if "://" not in url:
        return MASK
    parts, user, password, host = _parts(url)
    netloc = host
    if user or password:
        netloc = f"{user}{':' + MASK if password else ''}@{host}"
    path = "/" + MASK if parts.path.strip("/") else parts.path
    query = "&".join(
        f"{key}={value if key.lower() in SAFE_KEYS else MASK}"
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    # The fragment is a channel name (slack://.../#backups), not a secret.
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def secret_parts(url: str) -> set[str]:
    """The pieces of ``url`` that ``redact_url`` hides (for scrubbing logs)."""
    if "://" not in url:
        return {url}
    parts, _user, password, host = _parts(url)
    found = {password, urllib.parse.unquote(password)}
    if host == MASK:
        found.add(parts.netloc.rpartition("@")[2])
        found.update(re.split(r"[:@]", parts.netloc.rpartition("@")[2]))
    # A path segment is a secret if it looks like a token, not a word ("hook", "ping").
    found.update(
        segment
        for segment in parts.path.split("/")
        if len(segment) >= 8 or any(ch.isdigit() for ch in segment)
    )
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() not in SAFE_KEYS:
            found.update({value, urllib.parse.quote(value, safe="")})
    return {piece for piece in found if len(piece) >= MIN_SECRET}


class SecretFilter(logging.Filter):
    """Scrubs the registered secrets from every record, and makes it one printable line."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, urls: Iterable[str]) -> None:
        with self._lock:
            found = set(self._secrets)
            for url in urls:
                found.update(secret_parts(url))
            # Longest first, so a secret that contains another is replaced whole.
            self._secrets = tuple(sorted(found, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = self.scrub(printable(record.getMessage()))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        record.msg, record.args = message, None
        return True


# One for the process: channels register into it, log handlers filter through it.
SECRETS = SecretFilter()
