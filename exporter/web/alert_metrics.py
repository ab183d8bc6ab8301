"""Alerting metrics, rendered at scrape time from the alert state and delivery counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.alerting.alertmanager import AlertmanagerPoster
from exporter.alerting.service import Alerting
from exporter.target import Target


class AlertCollector(Collector):
    def __init__(
        self,
        alerting: Callable[[], Alerting],
        targets: Callable[[], Sequence[Target]],
        namespace: str,
    ) -> None:
        self.alerting = alerting
        self.targets = targets
        self.namespace = namespace

    def collect(self) -> Iterator[Metric]:
        alerting = self.alerting()
        firing = Metric(
            f"{self.namespace}_alert_firing",
            "1 while backup-monitor's own alert for the target and check is firing.",
            "gauge",
        )
        statuses = alerting.state.statuses()  # the label set: what the state machine knows
        errors = Metric(
            "backup_monitor_check_errors",
            "Evaluations in which a check raised (reported not ok, 'internal error').",
            "counter",
        )
        failed = alerting.evaluator.check_errors
        for target in self.targets():
            labels = {"target": target.name, **target.config.labels}
            for check, is_firing in statuses.get(target.name, ()):
                firing.add_sample(firing.name, {**labels, "check": check}, int(is_firing))
                if (target.name, check) in failed:
                    count = failed[(target.name, check)]
                    errors.add_sample(f"{errors.name}_total", {**labels, "check": check}, count)
        yield firing
        yield errors
        sent = Metric(
            "backup_monitor_notifications",
            "Notification attempts per URL, by result (a failed attempt is retried).",
            "counter",
        )
        delivery = alerting.delivery
        sent.add_sample("backup_monitor_notifications_total", {"result": "sent"}, delivery.sent)
        sent.add_sample("backup_monitor_notifications_total", {"result": "failed"}, delivery.failed)
        yield sent
        pending = Metric(
            "backup_monitor_notifications_pending",
            "Notifications waiting for delivery (per URL), including those being retried.",
            "gauge",
        )
        pending.add_sample(pending.name, {}, delivery.pending())
        yield pending
        errors = Metric(
            "backup_monitor_state_write_errors",
            "Failed writes of the state file (the previous file is kept intact).",
            "counter",
        )
        errors.add_sample(f"{errors.name}_total", {}, alerting.store.write_errors)
        yield errors
        if alerting.alertmanager is not None:
            yield from _alertmanager_metrics(alerting.alertmanager)
        if alerting.heartbeat is not None:
            beat = Metric(
                "backup_monitor_heartbeat_last_success_timestamp_seconds",
                "When the heartbeat URL last answered, in seconds since the epoch; 0 if never.",
                "gauge",
            )
            beat.add_sample(beat.name, {}, alerting.heartbeat.last_success)
            yield beat


def _alertmanager_metrics(poster: AlertmanagerPoster) -> Iterator[Metric]:
    posts = Metric(
        "backup_monitor_alertmanager_posts",
        "Posts of the firing and resolved alerts to each Alertmanager (URL without its "
        "secrets), by result.",
        "counter",
    )
    pending = Metric(
        "backup_monitor_alertmanager_pending",
        "Alerts of the last post to each Alertmanager that did not go through (0 once it did).",
        "gauge",
    )
    for worker in poster.workers:
        for result, count in worker.posts.items():
            posts.add_sample(f"{posts.name}_total", {"url": worker.shown, "result": result}, count)
        pending.add_sample(pending.name, {"url": worker.shown}, worker.pending)
    yield posts
    yield pending
