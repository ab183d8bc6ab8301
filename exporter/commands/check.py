"""``backup-monitor check``: scan every target once and report, as a table or JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from exporter.checks.table import evaluate_target
from exporter.commands.exitcodes import STATE_EXIT, Exit
from exporter.config import Config
from exporter.index import Clock, Verification
from exporter.sources.capacity import sample
from exporter.sources.jobs import job_book
from exporter.sources.object_storage import RemotePoller
from exporter.sources.supervisor import scan_into_index
from exporter.target import Target, link_mirrors
from exporter.units import printable
from exporter.verify.pool import examine, verify_newest
from exporter.web.metrics import BackupCollector
from exporter.web.status import build_targets, checks_of, no_alerts


def run_checks(
    config: Config,
    clock: Clock = time.time,
    progress: Callable[[list[Target]], Iterable[Target]] = iter,
) -> tuple[list[Target], float]:
    """Scan every target once, verify its newest complete (settled) backup, then evaluate
    each (after all are scanned: a mirror's check reads its source's listing); a job's
    runs are those the daemon saved in the state directory.

    ``progress`` wraps the list of targets (the CLI passes a progress bar).
    """
    targets = [Target(t, clock) for t in config.targets]
    link_mirrors(targets)
    # The jobs' runs as the daemon recorded them (read, never written: the daemon owns them).
    jobs = job_book(config.state_dir, clock, writable=False)
    for target in targets:
        if target.config.job is not None:
            target.job = jobs.record(target.name)
    for target in progress(targets):
        if target.config.remote:
            RemotePoller(target, clock).poll()
        else:
            scan_into_index(target, clock)
        verification = verify_newest(target, clock)
        if isinstance(verification, Verification):  # not when it could not be verified
            target.index.set_verification(verification)
    sample(targets)  # free space, for the capacity check
    now = clock()
    for target in targets:
        if target.config.encryption == "required":
            examine(target, now)
        evaluate_target(target, now)
    return targets, now


def write_textfile(path: str, targets: list[Target], config: Config, clock: Clock) -> None:
    """The same metrics as /metrics, for node_exporter's textfile collector (write + rename)."""
    registry = CollectorRegistry()
    registry.register(BackupCollector(lambda: targets, None, config.namespace, clock))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".backup-monitor-", suffix=".prom.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate_latest(registry))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def document(targets: list[Target], now: float) -> dict[str, Any]:
    """The status document, as /api/v1/targets serves it (no alerts in a one-shot run)."""
    return build_targets(targets, no_alerts, now, hide_paths=False)


def exit_code(targets: list[Target], now: float) -> Exit:
    return STATE_EXIT[document(targets, now)["state"]]


def render_table(targets: list[Target], now: float) -> str:
    rows = [("TARGET", "CHECK", "STATUS", "DETAIL")]
    for target in targets:
        for name, ok, reason in checks_of(target):
            rows.append((target.name, name, "ok" if ok else "FAIL", printable(reason)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def render_json(targets: list[Target], now: float) -> str:
    return json.dumps(document(targets, now), indent=2) + "\n"
