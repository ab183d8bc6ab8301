"""Posting the daemon's own alerts to Alertmanager (API v2), as Prometheus does.

Every alert firing in the daemon's state machine (after ``for``) is posted to every
configured Alertmanager with the alertname of its bundled Prometheus rule, the labels
``target``, ``check``, ``severity``, the external labels and the target's own labels,
and its reason as the description. While it fires it is posted again every
``resend_interval`` with ``endsAt`` four intervals ahead, so the alerts of a daemon that
died expire instead of sticking; once it resolves it is posted with ``endsAt`` = now
until every Alertmanager has taken it. An Alertmanager cluster then deduplicates,
groups, routes and silences across any number of daemons.

One worker per URL, with bounded retries and backoff: nothing here blocks evaluation,
which only hands over what changed (``sync``).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from exporter.alerting.redact import SECRETS, redact_url
from exporter.alerting.state import AlertState
from exporter.checks.table import BY_NAME
from exporter.config import AlertmanagerConfig
from exporter.loop import Loop
from exporter.target import Target

log = logging.getLogger(__name__)

# endsAt of a firing alert: this many resend intervals ahead.
EXPIRY = 4
RETRY_INITIAL = 1.0

Key = tuple[str, str]  # (target, check)


def _stamp(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class AlertmanagerPoster:
    """What is posted: the firing alerts, and the resolutions not yet taken everywhere."""

    def __init__(
        self,
        config: AlertmanagerConfig,
        state: AlertState,
        targets: Callable[[], Sequence[Target]],
        status_url: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state = state
        self.targets = targets
        self.status_url = status_url
        self.clock = clock
        self.labels = {"instance": socket.gethostname(), **config.external_labels}
        self._lock = threading.Lock()
        self._firing: dict[Key, tuple[float, str]] = {}  # key -> (since, reason)
        self.workers = [_Worker(url, self) for url in config.urls]
        secrets = [*config.urls]
        if config.basic_auth is not None:
            secrets.append(config.basic_auth.password)
        if config.bearer_token is not None:
            secrets.append(config.bearer_token)
        SECRETS.register(secrets)

    def start(self) -> None:
        self.sync()
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def sync(self) -> None:
        """Take the state machine's firing alerts (after each evaluation round); wake the
        workers at once when an alert started or ended firing."""
        now = self.clock()
        current = {(t, c): (rec.since, rec.reason) for t, c, rec in self.state.firing()}
        with self._lock:
            ended = {k: v for k, v in self._firing.items() if k not in current}
            started = current.keys() - self._firing.keys()
            self._firing = current
        for key, (since, reason) in ended.items():
            alert = self.alert(key, since, reason, now, ended=True)
            for worker in self.workers:
                worker.resolved(key, alert)
        if ended or started:
            for worker in self.workers:
                worker.wake()

    def alert(self, key: Key, since: float, reason: str, now: float, ended: bool) -> dict[str, Any]:
        target, check = key
        spec = BY_NAME.get(check)
        found = next((t for t in self.targets() if t.name == target), None)
        labels = {
            **(found.config.labels if found is not None else {}),
            **self.labels,
            "alertname": spec.alert if spec else check,
            "target": target,
            "check": check,
            "severity": spec.severity if spec else "warning",
        }
        summary = (spec.summary if spec else check).capitalize()
        ends = now if ended else now + EXPIRY * self.config.resend_interval
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {"summary": f"{summary}: {target}", "description": reason},
            "startsAt": _stamp(since),
            "endsAt": _stamp(ends),
            "generatorURL": f"{self.status_url()}#target-{target}",
        }
        if spec is not None:
            alert["annotations"]["runbook_url"] = spec.runbook_url
        return alert

    def firing(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            firing = dict(self._firing)
        return [self.alert(k, since, reason, now, False) for k, (since, reason) in firing.items()]

    def healthy(self) -> bool:
        """False once every Alertmanager has failed for longer than EXPIRY intervals."""
        limit = EXPIRY * self.config.resend_interval
        return any(w.failing_for() < limit for w in self.workers)

    def request(self, url: str, body: bytes) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "User-Agent": "backup-monitor"}
        auth = self.config.basic_auth
        if auth is not None:
            token = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token}"
        endpoint = url.rstrip("/") + "/api/v2/alerts"
        return urllib.request.Request(endpoint, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) checked in the config


class _Worker(Loop):
    """Posts to one Alertmanager: every resend_interval, at once on a change, and with
    backoff after a failure."""

    def __init__(self, url: str, poster: AlertmanagerPoster) -> None:
        super().__init__(f"alertmanager {redact_url(url)}", poster.config.resend_interval)
        self.url = url
        self.shown = redact_url(url)
        self.poster = poster
        self._lock = threading.Lock()
        self._resolved: dict[Key, dict[str, Any]] = {}
        self.posts = {"ok": 0, "error": 0}
        self.pending = 0  # alerts of the last attempt, while it has not gone through
        self._failing_since: float | None = None
        self._backoff = RETRY_INITIAL
        cafile = poster.config.ca_file
        self._tls = ssl.create_default_context(cafile=cafile) if cafile else None

    def resolved(self, key: Key, alert: dict[str, Any]) -> None:
        with self._lock:
            self._resolved[key] = alert

    def failing_for(self) -> float:
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    def round(self) -> float | None:
        with self._lock:
            resolved = dict(self._resolved)
        firing = self.poster.firing()
        alerts = [*firing, *(a for k, a in resolved.items() if k not in self._keys(firing))]
        if not alerts:
            return None
        body = json.dumps(alerts).encode()
        try:
            request = self.poster.request(self.url, body)
            with urllib.request.urlopen(  # noqa: S310 - http(s) checked in the config
                request, timeout=self.poster.config.timeout, context=self._tls
            ) as answer:
                answer.read()
        except (OSError, ValueError) as exc:
            self.posts["error"] += 1
            self.pending = len(alerts)
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                why = getattr(exc, "reason", None) or exc
                log.warning("cannot post alerts to Alertmanager %s: %s", self.shown, why)
            delay, self._backoff = self._backoff, min(self._backoff * 2, self.interval)
            return delay
        self.posts["ok"] += 1
        self.pending = 0
        if self._failing_since is not None:
            log.info("Alertmanager %s takes alerts again", self.shown)
        self._failing_since, self._backoff = None, RETRY_INITIAL
        with self._lock:
            for key, alert in resolved.items():
                if self._resolved.get(key) is alert:  # not replaced meanwhile
                    del self._resolved[key]
        return None

    @staticmethod
    def _keys(alerts: list[dict[str, Any]]) -> set[Key]:
        return {(a["labels"]["target"], a["labels"]["check"]) for a in alerts}
