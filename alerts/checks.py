"""The checks: small pure functions of (snapshot, target config, now).

A check returns a CheckResult, or None when it does not apply to the target
(``count`` without ``min_count``). ``next_change_at`` is the moment the result
can flip with no file activity at all (the newest backup crossing
``max_age``), so the evaluator sleeps until exactly then instead of polling.
Adding a check is adding one function to CHECKS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.config import TargetConfig
from exporter.index import TargetSnapshot
from exporter.units import format_duration, humanize_age, humanize_size


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    reason: str
    next_change_at: float | None = None


Check = Callable[[TargetSnapshot, TargetConfig, float], CheckResult | None]


def _down(snap: TargetSnapshot) -> CheckResult:
    return CheckResult(False, f"target is down: {snap.error}")


def check_age(snap: TargetSnapshot, cfg: TargetConfig, now: float) -> CheckResult:
    if not snap.up:
        return _down(snap)
    if snap.newest is None:
        return CheckResult(False, "no backup found")
    age = max(0.0, now - snap.newest.mtime)
    limit = format_duration(cfg.max_age)
    if age > cfg.max_age:
        return CheckResult(
            False, f"newest backup {snap.newest.name} is {humanize_age(age)} old (max {limit})"
        )
    return CheckResult(
        True,
        f"newest backup {snap.newest.name} is {humanize_age(age)} old (max {limit})",
        next_change_at=snap.newest.mtime + cfg.max_age,
    )


def check_size(snap: TargetSnapshot, cfg: TargetConfig, now: float) -> CheckResult:
    if not snap.up:
        return _down(snap)
    if snap.newest is None:
        return CheckResult(False, "no backup found")
    size = humanize_size(snap.newest.size)
    limit = humanize_size(cfg.min_size)
    if snap.newest.size < cfg.min_size:
        return CheckResult(False, f"newest backup {snap.newest.name} is {size} (min {limit})")
    return CheckResult(True, f"newest backup {snap.newest.name} is {size} (min {limit})")


def check_count(snap: TargetSnapshot, cfg: TargetConfig, now: float) -> CheckResult | None:
    if cfg.min_count is None:
        return None
    if not snap.up:
        return _down(snap)
    text = f"{snap.count} backups (min {cfg.min_count})"
    return CheckResult(snap.count >= cfg.min_count, text)


def check_target_down(snap: TargetSnapshot, cfg: TargetConfig, now: float) -> CheckResult:
    if not snap.up:
        return CheckResult(False, f"{cfg.path}: {snap.error}")
    return CheckResult(True, f"{cfg.path} is readable")


CHECKS: dict[str, Check] = {
    "age": check_age,
    "size": check_size,
    "count": check_count,
    "target_down": check_target_down,
}


def evaluate(snap: TargetSnapshot, cfg: TargetConfig, now: float) -> dict[str, CheckResult]:
    """Every applicable check's result, in CHECKS order."""
    results: dict[str, CheckResult] = {}
    for name, check in CHECKS.items():
        result = check(snap, cfg, now)
        if result is not None:
            results[name] = result
    return results
