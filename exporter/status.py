"""The status document behind /api/v1/targets, /api/v1/alerts, the status page and `status`.

A stable, versioned schema: fields are added, never renamed or removed, within a
version. Built at request time from the same snapshots the metrics use.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from exporter.index import BackupFile, TargetSnapshot
from exporter.supervisor import Target
from exporter.units import format_duration, humanize_age, humanize_size

API_VERSION = 1

# (snapshot, target, now) -> [(check, ok, reason)]
CheckLister = Callable[[TargetSnapshot, Target, float], list[tuple[str, bool, str]]]
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
    targets: Sequence[Target],
    list_checks: CheckLister,
    firing: AlertLookup,
    now: float,
    hide_paths: bool,
) -> dict[str, Any]:
    rows = []
    for target in targets:
        snap = target.index.snapshot()
        rows.append(
            target_status(target, snap, list_checks(snap, target, now), firing, now, hide_paths)
        )
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
