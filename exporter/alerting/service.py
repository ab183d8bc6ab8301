"""The alerting side of the daemon, assembled: state, state file, delivery, evaluator, heartbeat."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from exporter.alerting.alertmanager import AlertmanagerPoster
from exporter.alerting.delivery import Delivery, build_channels
from exporter.alerting.evaluator import Evaluator
from exporter.alerting.heartbeat import Heartbeat
from exporter.alerting.redact import SECRETS, redact_url
from exporter.alerting.state import AlertState
from exporter.alerting.store import StateStore
from exporter.config import Config
from exporter.index import Clock
from exporter.target import Target

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]


class Alerting:
    def __init__(
        self,
        config: Config,
        targets: Callable[[], Sequence[Target]],
        scanning_health: HealthCheck,
        clock: Clock = time.time,
        status_url: Callable[[], str] = lambda: "",
    ) -> None:
        notify = config.notify
        self.config = config
        self.clock = clock
        self.scanning_health = scanning_health
        self.state = AlertState(
            notify.for_, notify.repeat_interval, notify.min_interval, notify.send_resolved
        )
        self.store = StateStore(config.state_dir)
        self.delivery = Delivery(
            build_channels(notify),
            notify.timeout,
            notify.retry_initial,
            notify.retry_max,
            on_change=self.store.save,
            clock=clock,
        )
        self.store.register("alerts", self.state.to_json)
        self.store.register("outbox", self.delivery.to_json)
        saved = self.store.load()
        self.state.load_json(saved.get("alerts", {}))
        self.delivery.load_json(saved.get("outbox", []))
        manager = config.alertmanager
        self.alertmanager = (
            AlertmanagerPoster(manager, self.state, targets, status_url, clock)
            if manager is not None
            else None
        )
        self.evaluator = Evaluator(
            targets,
            self.state,
            notify,
            self.delivery.submit,
            self.store.save,
            clock,
            self.alertmanager.sync if self.alertmanager is not None else None,
        )
        if notify.heartbeat:
            SECRETS.register([notify.heartbeat.url])
        self.heartbeat = (
            Heartbeat(notify.heartbeat, self.health, redact_url(notify.heartbeat.url), clock)
            if notify.heartbeat
            else None
        )

    def health(self) -> tuple[bool, str]:
        """Healthy: scans run, alerts are evaluated, and no notification is stuck."""
        ok, why = self.scanning_health()
        if not ok:
            return ok, why
        if not self.evaluator.is_alive():
            return False, "alert evaluator is not running"
        if self.alertmanager is not None and not self.alertmanager.healthy():
            return False, "every Alertmanager has refused alerts for too long"
        oldest = self.delivery.oldest_pending()
        if oldest is not None and self.clock() - oldest > self.config.notify.max_queue_age:
            return False, "a notification has been undeliverable for too long"
        return True, "ok"

    def start(self) -> None:
        if self.alertmanager is not None:
            for worker in self.alertmanager.workers:
                log.info("posting alerts to Alertmanager %s", worker.shown)
        elif not self.delivery.channels:
            log.info("no notification URL configured: alerts are logged and exported only")
        for channel in self.delivery.channels:
            log.info("notifying %s", channel.name)
        self.delivery.start()
        self.evaluator.start()
        if self.alertmanager is not None:
            self.alertmanager.start()  # after the first round: the firing alerts are known
        if self.heartbeat:
            self.heartbeat.start()

    def stop(self) -> None:
        if self.heartbeat:
            self.heartbeat.stop()
        self.evaluator.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()
        self.delivery.stop()
        self.store.save()
