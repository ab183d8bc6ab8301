"""Wires the parts into one running daemon: supervisor, watcher, collector, HTTP server."""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter.alerting.delivery import build_channels
from exporter.alerting.redact import SECRETS
from exporter.alerting.service import Alerting
from exporter.config import Config, TargetConfig, parse_listen
from exporter.counters import DaemonStats
from exporter.index import Clock
from exporter.sources.capacity import SpaceSampler, sample
from exporter.sources.joblog import LogFollower
from exporter.sources.jobs import job_book
from exporter.sources.object_storage import RemotePoller
from exporter.sources.pings import make_ping_app
from exporter.sources.supervisor import Supervisor
from exporter.sources.watch import (
    ObserverFactory,
    OverflowListener,
    Watcher,
    default_observer_factory,
)
from exporter.target import Target, link_mirrors
from exporter.verify.drill import drill_book
from exporter.verify.pool import Verifier
from exporter.web.alert_metrics import AlertCollector
from exporter.web.app import HttpServer, make_app
from exporter.web.auth import BasicAuth, load_web_config, ssl_context
from exporter.web.metrics import BackupCollector
from exporter.web.status import build_targets

log = logging.getLogger(__name__)


def _warn_if_readable(target: str, identity: str) -> None:
    """An identity file is a secret: say so when others can read it (its path only)."""
    try:
        mode = os.stat(identity).st_mode
    except OSError as exc:
        log.warning("target %s: decrypt_identity %s: %s", target, identity, exc.strerror)
        return
    if mode & 0o077:
        log.warning(
            "target %s: decrypt_identity %s is readable by others (mode %04o): chmod 600 it",
            target,
            identity,
            stat.S_IMODE(mode),
        )


class Daemon:
    def __init__(
        self,
        config: Config,
        clock: Clock = time.time,
        observer_factory: ObserverFactory = default_observer_factory,
    ) -> None:
        self.config = config
        self.clock = clock
        self.stats = DaemonStats()
        self.jobs = job_book(config.state_dir, clock, self._index_changed)
        self.drills = drill_book(config.state_dir, clock, self._index_changed)
        self.targets = [self._new_target(t) for t in config.targets]
        self._pollers: dict[str, RemotePoller] = {}
        link_mirrors(self.targets)
        self.watcher = Watcher(config.poll_interval, self.stats, observer_factory)
        self.supervisor = Supervisor(
            self.targets,
            self.watcher,
            self.stats,
            config.rescan_interval,
            config.retry_interval,
            clock,
            config.watch_mode,
        )
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        backup_collector = BackupCollector(
            lambda: self.targets, self.stats, config.namespace, clock
        )
        self.registry.register(backup_collector)
        self.verifier = Verifier(
            lambda: self.targets, self.stats, config.verify_workers, clock, config.state_dir
        )
        self.alerting = Alerting(
            config, lambda: self.targets, self._scanning_health, clock, self._status_url
        )
        alert_collector = AlertCollector(
            lambda: self.alerting, lambda: self.targets, config.namespace
        )
        self.registry.register(alert_collector)
        self._collectors: list[BackupCollector | AlertCollector] = [
            backup_collector,
            alert_collector,
        ]
        self._overflow = OverflowListener(self.supervisor.request_rescan_all)
        host, port = parse_listen(config.listen)
        self.job_logs = LogFollower(lambda: self.targets)
        self.space = SpaceSampler(lambda: self.targets)
        app = make_app(
            self.registry,
            config.metrics_path,
            self.health,
            self.status,
            config.status_refresh,
            make_ping_app(lambda: self.targets),
        )
        tls = None
        if config.web_config_file:
            web = load_web_config(config.web_config_file)
            if web.basic_auth_users:
                app = BasicAuth(app, web.basic_auth_users)
            if web.tls_server_config:
                tls = ssl_context(web.tls_server_config)
        self.http = HttpServer(app, host, port, tls)
        self._stopped = threading.Event()

    def _new_target(self, config: TargetConfig) -> Target:
        target = Target(config, self.clock)
        target.index.subscribe(self._index_changed)
        if config.job is not None:
            # Records outlive the target: a reload that edits the target keeps its runs.
            target.job = self.jobs.record(config.name)
            if config.job.token:
                SECRETS.register([config.job.token])
        if config.drill is not None:
            target.drill = self.drills.record(config.name)
        if config.decrypt_identity:
            _warn_if_readable(config.name, config.decrypt_identity)
        return target

    def _sync_pollers(self) -> None:
        """One poller per remote target: stop those of removed or changed targets."""
        current = {t.name: t for t in self.targets if t.config.remote}
        for name, poller in list(self._pollers.items()):
            if current.get(name) is not poller.target:
                poller.stop()
                del self._pollers[name]
        for name, target in current.items():
            if name not in self._pollers:
                self._pollers[name] = RemotePoller(target, self.clock)
                self._pollers[name].start()

    def _index_changed(self, name: str) -> None:
        # Looked up at each call: a reload replaces the alerting side.
        self.alerting.evaluator.wake(name)
        self.verifier.wake(name)
        self.space.wake(name)  # a backup written or removed: free space moved

    @property
    def url(self) -> str:
        host = self.http.host or "localhost"
        if host in ("0.0.0.0", "::"):  # noqa: S104 - turning a bind address into a link
            host = "localhost"
        host = f"[{host}]" if ":" in host else host
        return f"{self.http.scheme}://{host}:{self.http.port}{self.config.metrics_path}"

    def _status_url(self) -> str:
        """The status page as an Alertmanager's reader reaches it (generatorURL)."""
        manager = self.config.alertmanager
        if manager is not None and manager.external_url:
            return manager.external_url.rstrip("/") + "/"
        host = self.http.host if self.http.host not in ("", "0.0.0.0", "::") else None  # noqa: S104
        host = host or socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        return f"{self.http.scheme}://{host}:{self.http.port}/"

    def status(self) -> dict[str, Any]:
        """The document behind /api/v1/targets and the status page."""
        return build_targets(
            self.targets,
            self.alerting.state.firing_since,
            self.clock(),
            self.config.hide_paths,
        )

    def _scanning_health(self) -> tuple[bool, str]:
        if not self.supervisor.is_healthy():
            return False, "the scan loop is not running"
        return True, "ok"

    def health(self) -> tuple[bool, str]:
        """For /healthz and the heartbeat: scans run, alerts are evaluated, nothing is stuck."""
        ok, why = self.alerting.health()
        return ok, why + "\n"

    def start(self) -> None:
        logging.getLogger("watchdog").addHandler(self._overflow)
        # The initial index is complete before anything is served or evaluated.
        self.supervisor.scan_all()
        sample(self.targets)  # free space known before the first evaluation
        self.supervisor.start()
        self._sync_pollers()
        # Alerts start after the initial index is complete: no start-up false alarms.
        self.alerting.start()
        self.verifier.start()
        self.job_logs.start()
        self.space.start()
        self.http.start()
        for target in self.targets:
            snap = target.index.snapshot()
            state = f"{snap.count} backups" if snap.up else f"down ({snap.error})"
            log.info("target %s: %s: %s", target.name, target.config.path, state)
        log.info("serving metrics on %s", self.url)

    def reload(self, config: Config) -> None:
        """Apply a new configuration without a restart (SIGHUP).

        Targets whose settings did not change keep their index and alert state;
        added ones are scanned and watched, removed ones forgotten. Settings that
        need a restart (listen address, metrics path, watch mode) are reported.
        """
        build_channels(config.notify)  # a bad notification URL rejects the whole reload
        restart_keys = ("listen", "metrics_path", "poll_interval", "verify_workers")
        for key in (*restart_keys, "web_config_file"):
            if getattr(config, key) != getattr(self.config, key):
                log.warning("reload: %s changed; it takes effect at the next restart", key)
        old = {t.name: t for t in self.targets}
        targets = []
        for cfg in config.targets:
            kept = old.get(cfg.name)
            if kept is not None and kept.config == cfg:
                targets.append(kept)
                continue
            targets.append(self._new_target(cfg))
        for name, target in old.items():
            if target not in targets:
                self.supervisor.unwatch(name)
        if config.watch_mode != self.supervisor.watch_mode:
            self.supervisor.watch_mode = config.watch_mode
            for target in targets:
                self.supervisor.request_rescan(target.name, rewatch=True)
        added = [t for t in targets if t.name not in old or old[t.name] is not t]
        removed = [n for n in old if n not in {t.name for t in targets}]
        for target in added:
            self.supervisor.scan(target)
        self.supervisor.set_targets(targets, config.rescan_interval, config.retry_interval)
        link_mirrors(targets)
        self.targets = targets
        self._sync_pollers()
        for collector in self._collectors:
            collector.namespace = config.namespace
        # The alerting side is rebuilt from the saved state: unchanged targets keep theirs.
        self.alerting.stop()
        self.alerting = Alerting(
            config, lambda: self.targets, self._scanning_health, self.clock, self._status_url
        )
        self.alerting.start()
        self.config = config.model_copy(
            update={k: getattr(self.config, k) for k in ("listen", "metrics_path")}
        )
        log.info(
            "configuration reloaded: %d targets (%d new or changed, %d removed)",
            len(targets),
            len(added),
            len(removed),
        )

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.http.stop()
        self.verifier.stop()
        self.job_logs.stop()
        self.space.stop()
        self.alerting.stop()
        for poller in self._pollers.values():
            poller.stop()
        self.supervisor.stop()
        self.watcher.stop()
        logging.getLogger("watchdog").removeHandler(self._overflow)
        log.info("stopped")
