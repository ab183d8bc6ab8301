"""Delivery through apprise: one worker per URL, retries for the failed URL only.

apprise's ``notify()`` blocks up to its service timeout, so each URL has its own
worker thread and queue: a dead or slow endpoint delays nothing but itself.
Each attempt is bounded by ``timeout``; a failure is retried with exponential
backoff (``retry_initial`` doubling up to ``retry_max``), for ever, in order.
Undelivered notifications are part of the state file, so a restart delivers them.
Only the redacted form of a URL (``exporter.alerting.redact``: no character of a password or
token) is ever logged, and every log record is scrubbed of the URLs' secrets.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import apprise

from exporter.alerting.messages import FIRING, RESOLVED, Notification
from exporter.alerting.redact import SECRETS, redact_url
from exporter.config import ConfigError, NotifyConfig

log = logging.getLogger(__name__)

_NOTIFY_TYPES = {
    FIRING: apprise.NotifyType.FAILURE,
    RESOLVED: apprise.NotifyType.SUCCESS,
}


class Channel:
    """One apprise service (one URL) and the tags that select it."""

    def __init__(self, service: apprise.plugins.NotifyBase, timeout: float = 10.0) -> None:
        # apprise's own socket timeouts (4 s) would cut a slower endpoint's answer short
        # and send it a copy at every retry: one attempt lasts what notify.timeout says.
        service.socket_connect_timeout = timeout
        service.socket_read_timeout = timeout
        self._apprise = apprise.Apprise()
        self._apprise.add(service)
        SECRETS.register([service.url()])
        self.name = redact_url(service.url())
        # The key survives restarts (it matches saved notifications) without holding secrets.
        self.key = hashlib.sha256(service.url().encode()).hexdigest()[:16]
        self.tags = frozenset(str(tag) for tag in service.tags)
        # apprise sleeps between two sends to one service (5.5 s for email, by default):
        # that wait is not a hung endpoint, so an attempt's time limit allows for it.
        self.throttle = float(getattr(service, "request_rate_per_sec", 0) or 0)

    def accepts(self, notification: Notification) -> bool:
        return not notification.tags or bool(self.tags & set(notification.tags))

    def send(self, notification: Notification) -> bool:
        notify_type = _NOTIFY_TYPES.get(notification.status, apprise.NotifyType.INFO)
        return bool(
            self._apprise.notify(
                body=notification.body,
                title=notification.title,
                notify_type=notify_type,
                # Plain text: keeps the body's aligned lines as written.
                body_format=apprise.NotifyFormat.TEXT,
            )
        )


def build_channels(notify: NotifyConfig) -> list[Channel]:
    """Every configured URL as a channel; a URL apprise cannot load is a ConfigError."""
    services = apprise.Apprise()
    SECRETS.register(item.url for item in notify.urls)
    for index, item in enumerate(notify.urls):
        if not services.add(item.url, tag=item.tags or None):
            raise ConfigError(
                f"notify.urls[{index}]: apprise cannot use {redact_url(item.url)} "
                "(unknown scheme or bad parameters)"
            )
    from_urls = list(services)
    if notify.config:
        source = apprise.AppriseConfig()
        if not source.add(notify.config):
            raise ConfigError(f"notify.config: apprise cannot read {notify.config}")
        services.add(source)
    loaded = list(services)  # reads the config file, if any
    if notify.config and len(loaded) == len(from_urls):
        raise ConfigError(f"notify.config: {notify.config} defines no usable URL")
    return [Channel(service, notify.timeout) for service in loaded]


@dataclass
class Pending:
    notification: Notification
    attempts: int = 0
    next_at: float = 0.0


class ChannelWorker:
    """Delivers one channel's queue in order, retrying the head until it succeeds."""

    def __init__(self, channel: Channel, owner: Delivery) -> None:
        self.channel = channel
        self.owner = owner
        self.queue: deque[Pending] = deque()
        self.wake = threading.Condition(owner.lock)
        self.thread = threading.Thread(
            target=self._run, name=f"notify-{channel.key[:6]}", daemon=True
        )

    def _run(self) -> None:
        owner = self.owner
        while True:
            with owner.lock:
                while not owner.stopping and (
                    not self.queue or self.queue[0].next_at > owner.clock()
                ):
                    timeout = self.queue[0].next_at - owner.clock() if self.queue else None
                    self.wake.wait(timeout)
                if owner.stopping:
                    return
                head = self.queue[0]
            ok = owner.attempt(self.channel, head.notification)
            with owner.lock:
                if ok:
                    self.queue.popleft()
                else:
                    head.attempts += 1
                    backoff = owner.retry_initial * 2 ** (head.attempts - 1)
                    head.next_at = owner.clock() + min(owner.retry_max, backoff)
            owner.changed()


class Delivery:
    def __init__(
        self,
        channels: Iterable[Channel],
        timeout: float,
        retry_initial: float,
        retry_max: float,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.on_change = on_change
        self.clock = clock
        self.lock = threading.Lock()
        self.stopping = False
        self.sent = 0
        self.failed = 0
        self.workers = {c.key: ChannelWorker(c, self) for c in channels}

    @property
    def channels(self) -> list[Channel]:
        return [w.channel for w in self.workers.values()]

    def start(self) -> None:
        for worker in self.workers.values():
            worker.thread.start()

    def stop(self) -> None:
        """Stop the workers; what is still queued stays in the state file."""
        with self.lock:
            self.stopping = True
            for worker in self.workers.values():
                worker.wake.notify_all()
        for worker in self.workers.values():
            if worker.thread.is_alive():
                worker.thread.join(timeout=0.5)

    def submit(self, notification: Notification) -> int:
        """Queue for every channel it is meant for; returns how many."""
        with self.lock:
            queued = 0
            for worker in self.workers.values():
                if worker.channel.accepts(notification):
                    worker.queue.append(Pending(notification, next_at=self.clock()))
                    worker.wake.notify()
                    queued += 1
        if queued:
            self.changed()
        return queued

    def attempt(self, channel: Channel, notification: Notification) -> bool:
        """One bounded attempt; True when apprise reports success."""
        outcome: list[bool] = []

        def call() -> None:
            try:
                outcome.append(channel.send(notification))
            except Exception:  # a plugin bug must not kill the worker
                log.exception("notification plugin for %s failed", channel.name)
                outcome.append(False)

        thread = threading.Thread(target=call, name="notify-attempt", daemon=True)
        thread.start()
        # Connecting and reading may each take ``timeout``.
        thread.join(2 * self.timeout + channel.throttle + 1)
        ok = bool(outcome and outcome[0])
        with self.lock:
            if ok:
                self.sent += 1
            else:
                self.failed += 1
        if ok:
            log.info("sent %r to %s", notification.title, channel.name)
        else:
            why = "timed out" if thread.is_alive() else "failed"
            log.warning("sending %r to %s %s; will retry", notification.title, channel.name, why)
        return ok

    def changed(self) -> None:
        self.on_change()

    def pending(self) -> int:
        with self.lock:
            return sum(len(w.queue) for w in self.workers.values())

    def oldest_pending(self) -> float | None:
        with self.lock:
            times = [w.queue[0].notification.created_at for w in self.workers.values() if w.queue]
        return min(times, default=None)

    def to_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"channel": key, "attempts": p.attempts, "notification": p.notification.to_json()}
                for key, worker in self.workers.items()
                for p in worker.queue
            ]

    def load_json(self, items: list[dict[str, Any]]) -> None:
        """Queue notifications saved by a previous run (for channels that still exist)."""
        dropped = 0
        with self.lock:
            for item in items:
                worker = self.workers.get(item.get("channel", ""))
                if worker is None:
                    dropped += 1
                    continue
                notification = Notification.from_json(item["notification"])
                worker.queue.append(Pending(notification, item.get("attempts", 0), 0.0))
        if dropped:
            log.warning("dropped %d saved notifications for URLs no longer configured", dropped)
