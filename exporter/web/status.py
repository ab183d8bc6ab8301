"""The status document behind /api/v1/targets, /api/v1/alerts, the status page and `status`.

A stable, versioned schema (docs/targets.schema.json): fields are added, never renamed
or removed, within a version. ``check --format json`` and ``status --format json`` print
this same document. Built at request time from the same snapshots the metrics use and
the targets' published evaluations: nothing is judged here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from exporter.index import BackupFile, TargetSnapshot
from exporter.target import Target
from exporter.units import format_duration, humanize_age, humanize_size
from exporter.verify.drill import TABLES_SHOWN

API_VERSION = 1

# (target name, check) -> (since, notified) when firing, else None
AlertLookup = Callable[[str, str], tuple[float, bool] | None]


def newest_document(newest: BackupFile | None, now: float) -> dict[str, Any] | None:
    """The newest backup as the API and `check --format json` show it."""
    if newest is None:
        return None
    age = max(0.0, now - newest.mtime)
    return {
        "name": newest.name,
        "timestamp": newest.mtime,
        "age_seconds": age,
        "age": humanize_age(age),
        "size_bytes": newest.size,
        "size": humanize_size(newest.size),
    }


def checks_of(target: Target) -> list[tuple[str, bool, str]]:
    """[(check, passed, reason)] from the target's published evaluation."""
    evaluation = target.evaluation
    if evaluation is None:
        return []
    return [(name, r.ok, r.reason) for name, r in evaluation.results.items()]


# The API and the page show this much of a run's output (the notification, its first lines).
OUTPUT_SHOWN = 4096


def job_document(target: Target, scrub: Callable[[str], str]) -> dict[str, Any] | None:
    """The job's runs (targets with ``job:``): the one in progress and the last ones."""
    if target.job is None:
        return None
    status = target.job.status
    last = status.last
    return {
        "running": status.running_since is not None,
        "running_since": status.running_since,
        "last_run": None
        if last is None
        else {
            "started_at": last.started_at,
            "ended_at": last.ended_at,
            "duration_seconds": last.duration,
            "exit_code": last.exit_code,
            "ok": last.ok,
            "output": scrub(last.tail[-OUTPUT_SHOWN:]),
        },
        "last_success_at": status.last_success.ended_at if status.last_success else None,
        "runs": {"success": status.successes, "failure": status.failures},
    }


def drill_document(target: Target, scrub: Callable[[str], str]) -> dict[str, Any] | None:
    """The restore drills (targets with ``drill:``): the last round and when the next is."""
    if target.drill is None or target.drill_schedule is None:
        return None
    status = target.drill.status
    return {
        "ok": status.ok,
        "last_run_at": status.ran_at,
        "next_run_at": target.drill_schedule.next_after(status.ran_at or status.since),
        "last_success_at": status.last_success_at,
        "results": [
            {
                "backup": r.backup,
                "backup_timestamp": r.backup_timestamp,
                "ok": r.ok,
                "reason": scrub(r.reason),
                "duration_seconds": r.duration,
                "phases": dict(r.phases),
                "tables": [
                    {"name": t.name, "restored": t.restored, "live": t.live}
                    for t in r.tables[:TABLES_SHOWN]
                ],
            }
            for r in status.results
        ],
        "runs": {"success": status.successes, "failure": status.failures},
    }


def no_alerts(_target: str, _check: str) -> tuple[float, bool] | None:
    """The alert lookup of a process that does not alert (`check`)."""
    return None


def _state(snap: TargetSnapshot, checks: list[tuple[str, bool, str]]) -> str:
    if not snap.up:
        return "down"
    return "ok" if all(ok for _, ok, _ in checks) else "failing"


def target_status(
    target: Target,
    snap: TargetSnapshot,
    checks: list[tuple[str, bool, str]],
    firing: AlertLookup,
    now: float,
    hide_paths: bool,
) -> dict[str, Any]:
    cfg = target.config

    def scrub(text: str) -> str:
        return text.replace(cfg.path, f"<{target.name}>") if hide_paths else text

    newest = snap.newest
    max_age = cfg.effective_max_age
    verification = snap.verification
    return {
        "name": target.name,
        "path": None if hide_paths else cfg.path,
        "labels": dict(cfg.labels),
        "state": _state(snap, checks),
        "up": snap.up,
        "error": scrub(snap.error) or None,
        "count": snap.count,
        "total_size_bytes": snap.total_size,
        "newest": newest_document(newest, now),
        "max_age_seconds": max_age,
        "max_age": format_duration(max_age) if max_age is not None else None,
        "min_size_bytes": cfg.min_size,
        "min_size": humanize_size(cfg.min_size),
        "schedule": cfg.schedule,
        "verification": None
        if verification is None
        else {
            "file": verification.name,
            "ok": verification.ok,
            "reason": verification.reason,
            "method": verification.method,
            "timestamp": verification.finished_at,
        },
        "job": job_document(target, scrub),
        "drill": drill_document(target, scrub),
        "checks": [
            {
                "name": name,
                "ok": ok,
                "reason": scrub(reason),
                "firing": (alert := firing(target.name, name)) is not None,
                "firing_since": alert[0] if alert else None,
            }
            for name, ok, reason in checks
        ],
    }


def build_targets(
    targets: Sequence[Target], firing: AlertLookup, now: float, hide_paths: bool
) -> dict[str, Any]:
    rows = []
    for target in targets:
        snap = target.index.snapshot()
        rows.append(target_status(target, snap, checks_of(target), firing, now, hide_paths))
    states = [row["state"] for row in rows]
    return {
        "version": API_VERSION,
        "generated_at": now,
        "host": socket.gethostname(),
        "state": "down" if "down" in states else "failing" if "failing" in states else "ok",
        "targets": rows,
    }


def build_alerts(document: dict[str, Any]) -> dict[str, Any]:
    """The firing alerts of a targets document."""
    alerts = [
        {
            "target": row["name"],
            "check": check["name"],
            "reason": check["reason"],
            "since": check["firing_since"],
        }
        for row in document["targets"]
        for check in row["checks"]
        if check["firing"]
    ]
    return {"version": API_VERSION, "generated_at": document["generated_at"], "alerts": alerts}
