"""`backup-monitor run`: run a backup job and report it to the daemon's ping endpoints.

It reports the start, runs the command with its output passed through live (the last
10 KB kept), then reports the exit status, the duration and that output, and exits with
the command's own status (128+N for a signal, as a shell does). Monitoring must never
break the backup: when the daemon cannot be reached the command runs all the same, a
warning goes to stderr, and the exit status is still the command's.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from types import FrameType
from typing import BinaryIO

from exporter.sources.jobs import keep_tail

OUTPUT_KEPT = 10 * 1024
# The end report is retried (the daemon may be restarting); the start report is not.
END_ATTEMPTS = 3
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

Warn = Callable[[str], None]


def local_url(listen: str, tls: bool) -> str:
    """The daemon's base URL from its listen address (all interfaces: the loopback)."""
    host, _sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # noqa: S104 - turning a bind address into a client's
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


class Reporter:
    """Sends the pings of one target; never raises, warns once per failed report."""

    def __init__(
        self, base_url: str, target: str, token: str | None, timeout: float, warn: Warn
    ) -> None:
        parts = urllib.parse.urlsplit(base_url.rstrip("/"))
        self.headers: dict[str, str] = {"User-Agent": "backup-monitor-run"}
        user, at, hostport = parts.netloc.rpartition("@")
        if at:  # urllib ignores credentials in a URL: send them as basic auth
            plain = urllib.parse.unquote(user).encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(plain).decode()
        self.query: dict[str, str] = {}
        if token:
            if at:
                self.query["token"] = token  # Authorization already carries basic auth
            else:
                self.headers["Authorization"] = f"Bearer {token}"
        path = f"{parts.path}/ping/{urllib.parse.quote(target, safe='')}"
        # Without credentials or token: also the form shown in warnings.
        self.base = urllib.parse.urlunsplit((parts.scheme, hostport, path, "", ""))
        self.timeout = timeout
        self.warn = warn

    def report(self, action: str, body: bytes = b"", attempts: int = 1, **query: str) -> bool:
        url = f"{self.base}/{action}" if action else self.base
        params = urllib.parse.urlencode({**query, **self.query})
        if params:
            url += "?" + params
        problem = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(attempt)  # 1 s, then 2 s: a restarting daemon is back by then
            request = urllib.request.Request(  # noqa: S310 - http(s) checked by the caller
                url, data=body, headers=self.headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                    answer.read()
                return True
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500:
                    break  # a wrong target or token does not get better by retrying
            except (OSError, ValueError) as exc:
                problem = str(getattr(exc, "reason", None) or exc)
        self.warn(f"cannot report {action or 'success'} to {self.base}: {problem}")
        return False


class _Tail:
    """The last OUTPUT_KEPT bytes of stdout and stderr together, as they came."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = b""

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data = (self._data + chunk)[-OUTPUT_KEPT:]

    def value(self) -> bytes:
        with self._lock:
            return self._data


def _pump(source: BinaryIO, sink: BinaryIO, tail: _Tail) -> None:
    """Pass a pipe through to our own stream as it comes, keeping its tail."""
    fd = source.fileno()
    while chunk := os.read(fd, 65536):
        tail.add(chunk)
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):
            pass  # our own stdout gone (a closed pipe): the job still runs to its end
    source.close()


def run_command(argv: Sequence[str], reporter: Reporter, stdout: BinaryIO, stderr: BinaryIO) -> int:
    """Run ``argv`` between a start and an end report; its exit status, shell-style."""
    reporter.report("start")
    began = time.monotonic()
    tail = _Tail()
    try:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        # A shell's statuses: 127 not found, 126 found but not runnable.
        status = 127 if isinstance(exc, FileNotFoundError) else 126
        message = f"backup-monitor run: cannot run {argv[0]}: {exc.strerror or exc}\n"
        stderr.write(message.encode())
        stderr.flush()
        tail.add(message.encode())
    else:
        pumps = [
            threading.Thread(target=_pump, args=(pipe, sink, tail), daemon=True)
            for pipe, sink in ((child.stdout, stdout), (child.stderr, stderr))
        ]
        for pump in pumps:
            pump.start()
        status = _wait(child)
        for pump in pumps:
            pump.join()
    duration = time.monotonic() - began
    reporter.report(
        str(status), keep_tail(tail.value()).encode(), END_ATTEMPTS, duration=f"{duration:.3f}"
    )
    return status


def _wait(child: subprocess.Popen[bytes]) -> int:
    """Wait for the child, passing on the signals that would stop us (systemd's stop,
    a Ctrl-C), so the job ends the way it would have without the wrapper."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
