"""The real `backup-monitor serve` as a child process, for signal and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tests.conftest import fetch, wait_for
from tests.peers import free_port


class DaemonProcess:
    def __init__(
        self,
        config: Path,
        log: Path,
        prefix: tuple[str, ...] = (),
        preexec: Callable[[], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self.prefix = prefix  # e.g. setpriv, to drop privileges
        self.preexec = preexec
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> DaemonProcess:
        # Output goes through a pipe, so limits set on the child never touch the log file.
        command = [*self.prefix, sys.executable, "-m", "exporter", "serve"]
        command += ["--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=self.preexec,  # noqa: PLW1509 - limits for the child only
        )
        threading.Thread(target=self._copy_output, daemon=True).start()

        def healthy() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()
            try:
                return fetch(self.url.replace("/metrics", "/healthz")) == "ok\n"
            except OSError:
                return False

        wait_for(healthy, timeout=20)
        return self

    def _copy_output(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with open(self.log, "ab") as handle:
            for line in self.proc.stdout:
                handle.write(line)
                handle.flush()

    def send(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Signal the process and return its exit status (it must exit in time)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def logs(self) -> str:
        return self.log.read_text(errors="replace")
