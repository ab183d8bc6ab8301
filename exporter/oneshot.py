"""``backup-monitor check``: scan every target once and report, as a table or JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from alerts.checks import CheckResult, check_states, evaluate
from exporter.collector import BackupCollector
from exporter.config import Config
from exporter.index import Clock, TargetSnapshot, Verification
from exporter.remote import RemotePoller
from exporter.status import newest_document
from exporter.supervisor import Target, link_mirrors, scan_into_index
from exporter.units import printable
from exporter.verifier import verify_newest

EXIT_OK, EXIT_FAILING, EXIT_CONFIG, EXIT_UNREADABLE = 0, 1, 2, 3


@dataclass(frozen=True)
class TargetReport:
    target: Target
    snapshot: TargetSnapshot
    checks: dict[str, CheckResult]


def run_checks(
    config: Config,
    clock: Clock = time.time,
    progress: Callable[[list[Target]], Iterable[Target]] = iter,
) -> tuple[list[TargetReport], float]:
    """Scan every target once and verify its newest complete (settled) backup.

    ``progress`` wraps the list of targets (the CLI passes a progress bar).
    """
    reports = []
    targets = [Target(t, clock) for t in config.targets]
    link_mirrors(targets)
    for target in progress(targets):
        if target.config.remote:
            RemotePoller(target, clock).poll()
        else:
            scan_into_index(target, clock)
        verification = verify_newest(target, clock)
        if isinstance(verification, Verification):  # not when it could not be verified
            target.index.set_verification(verification)
        snap = target.index.snapshot()
        reports.append(TargetReport(target, snap, evaluate(snap, target, clock())))
    return reports, clock()


def write_textfile(path: str, reports: list[TargetReport], config: Config, clock: Clock) -> None:
    """The same metrics as /metrics, for node_exporter's textfile collector (write + rename)."""
    registry = CollectorRegistry()
    targets = [r.target for r in reports]
    registry.register(BackupCollector(lambda: targets, None, check_states, config.namespace, clock))
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


def exit_code(reports: list[TargetReport]) -> int:
    if any(not r.snapshot.up for r in reports):
        return EXIT_UNREADABLE
    if any(not c.ok for r in reports for c in r.checks.values()):
        return EXIT_FAILING
    return EXIT_OK


def render_table(reports: list[TargetReport], now: float) -> str:
    rows = [("TARGET", "CHECK", "STATUS", "DETAIL")]
    for report in reports:
        for name, result in report.checks.items():
            status = "ok" if result.ok else "FAIL"
            rows.append((report.target.name, name, status, printable(result.reason)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def render_json(reports: list[TargetReport], now: float) -> str:
    document = {
        "ok": exit_code(reports) == EXIT_OK,
        "timestamp": now,
        "targets": [
            {
                "name": r.target.name,
                "path": r.target.config.path,
                "up": r.snapshot.up,
                "error": r.snapshot.error or None,
                "count": r.snapshot.count,
                "total_size_bytes": r.snapshot.total_size,
                "newest": newest_document(r.snapshot.newest, now),
                "checks": {n: {"ok": c.ok, "reason": c.reason} for n, c in r.checks.items()},
            }
            for r in reports
        ],
    }
    return json.dumps(document, indent=2) + "\n"
