"""Who watches the watcher: ping an outside URL only while the daemon is healthy.

A healthchecks.io-style service alerts when the pings stop, so a dead, wedged
or blind monitor is noticed too.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable

from exporter.config import HeartbeatConfig

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]


class Heartbeat:
    def __init__(
        self,
        config: HeartbeatConfig,
        healthy: HealthCheck,
        redacted_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.healthy = healthy
        self.redacted_url = redacted_url
        self.clock = clock
        self.last_success = 0.0
        self.withheld = 0  # rounds in which the daemon was unhealthy
        self._was_ok = True
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def beat(self) -> bool:
        """One round: ping if healthy; True when a ping succeeded."""
        ok, why = self.healthy()
        if not ok:
            self.withheld += 1
            if self._was_ok:
                log.error("heartbeat withheld: %s", why)
            self._was_ok = False
            return False
        if not self._was_ok:
            log.info("healthy again; heartbeat resumed")
        self._was_ok = True
        try:
            # The URL is validated as http(s) in the config model.
            request = urllib.request.Request(  # noqa: S310
                self.config.url, headers={"User-Agent": "backup-monitor"}
            )
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:  # noqa: S310
                response.read()
        except OSError as exc:
            log.warning("heartbeat to %s failed: %s", self.redacted_url, exc)
            return False
        self.last_success = self.clock()
        return True

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.beat()
            self._stopping.wait(self.config.interval)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=0.5)  # a ping in flight must not delay shutdown
