"""Who watches the watcher: ping an outside URL only while the daemon is healthy.

A healthchecks.io-style service alerts when the pings stop, so a dead, wedged
or blind monitor is noticed too.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable

from exporter.config import HeartbeatConfig
from exporter.loop import Loop

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]


class Heartbeat(Loop):
    def __init__(
        self,
        config: HeartbeatConfig,
        healthy: HealthCheck,
        redacted_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__("heartbeat", config.interval)
        self.config = config
        self.healthy = healthy
        self.redacted_url = redacted_url
        self.clock = clock
        self.last_success = 0.0
        self.withheld = 0  # rounds in which the daemon was unhealthy
        self._was_ok = True

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

    def round(self) -> None:
        self.beat()

    def stop(self, timeout: float = 0.5) -> None:
        super().stop(timeout)  # a ping in flight must not delay shutdown
