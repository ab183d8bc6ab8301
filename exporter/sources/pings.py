"""The ping endpoints: a backup job reports its runs over HTTP, in healthchecks.io's path
forms, so a script that pings healthchecks only changes its base URL.

    GET|POST /ping/<target>            the run succeeded
             /ping/<target>/start      a run started
             /ping/<target>/fail       the run failed
             /ping/<target>/<0-255>    the run exited with this status (0: success)

A POST body is the run's output: its last 100 KB are kept, as data (never executed, and
escaped wherever it is shown). ``?duration=SECONDS`` (sent by ``backup-monitor run``)
dates the run's start when its start ping did not arrive. A target whose ``job:`` has a
``token`` needs it as ``?token=`` or ``Authorization: Bearer``.
"""

from __future__ import annotations

import hmac
import math
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from exporter.sources.jobs import TAIL_KEPT, keep_tail
from exporter.target import Target

PREFIX = "/ping/"
# Bodies are read to their end (the client must see an answer), in chunks, keeping the
# last TAIL_KEPT bytes; past this much the request is refused instead.
MAX_BODY = 64 * 1024**2
CHUNK = 64 * 1024

StartResponse = Callable[..., Any]


def _answer(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _read_tail(environ: dict[str, Any]) -> bytes | None:
    """The last TAIL_KEPT bytes of the request body; None when it is too large to read."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    stream = environ["wsgi.input"]
    kept = b""
    while length > 0:
        chunk = stream.read(min(CHUNK, length))
        if not chunk:
            break
        length -= len(chunk)
        kept = (kept + chunk)[-TAIL_KEPT:]
    return kept


def _token_ok(environ: dict[str, Any], query: dict[str, list[str]], token: str) -> bool:
    given = query.get("token", [""])[0]
    scheme, _sep, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer":
        given = credentials.strip()
    return hmac.compare_digest(given.encode(), token.encode())


def _duration(query: dict[str, list[str]]) -> float | None:
    try:
        value = float(query["duration"][0])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) and 0 <= value <= 366 * 86400 else None


def make_ping_app(targets: Callable[[], Sequence[Target]]) -> Callable[..., Iterable[bytes]]:
    """The WSGI app for paths under /ping/ (the web app hands them over)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "POST"):
            return _answer(start_response, "405 Method Not Allowed", "use GET or POST")
        name, _sep, action = environ.get("PATH_INFO", "")[len(PREFIX) :].partition("/")
        target = next((t for t in targets() if t.name == name), None)
        if target is None or target.job is None or target.config.job is None:
            return _answer(start_response, "404 Not Found", "no such target with job:")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        token = target.config.job.token
        if token is not None and not _token_ok(environ, query, token):
            return _answer(start_response, "401 Unauthorized", "wrong or missing token")
        if action not in ("", "start", "fail") and not (
            action.isascii() and action.isdigit() and len(action) <= 3 and int(action) <= 255
        ):
            return _answer(start_response, "400 Bad Request", "use start, fail or 0-255")
        tail = _read_tail(environ) if environ.get("REQUEST_METHOD") == "POST" else b""
        if tail is None:
            return _answer(start_response, "413 Content Too Large", "body over 64 MiB")
        if action == "start":
            target.job.start()
        else:
            code = 0 if action == "" else 1 if action == "fail" else int(action)
            target.job.finish(code, keep_tail(tail), _duration(query))
        return _answer(start_response, "200 OK", "OK")

    return app
