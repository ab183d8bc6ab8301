"""The checks: small pure functions of (snapshot, target, now).

A check returns a CheckResult, or None when it does not apply to the target
(``count`` without bounds, ``schedule`` without a cron expression...).
``next_change_at`` is the moment the result can flip with no file activity at
all (the newest backup crossing ``max_age``, a schedule's deadline), so the
evaluator sleeps until exactly then instead of polling. Adding a check is adding
one function to CHECKS, one Prometheus rule and one README row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.analysis import mirror_lag, missing_runs, retention_violations, settled_size_ratio
from exporter.index import TargetSnapshot
from exporter.supervisor import Target
from exporter.units import format_duration, humanize_age, humanize_size


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    reason: str
    next_change_at: float | None = None


Check = Callable[[TargetSnapshot, Target, float], CheckResult | None]


def _down(snap: TargetSnapshot) -> CheckResult:
    return CheckResult(False, f"target is down: {snap.error}")


def check_age(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    max_age = target.config.effective_max_age
    if max_age is None:
        return None
    if not snap.up:
        return _down(snap)
    if snap.newest is None:
        return CheckResult(False, "no backup found")
    age = max(0.0, now - snap.newest.mtime)
    limit = format_duration(max_age)
    text = f"newest backup {snap.newest.name} is {humanize_age(age)} old (max {limit})"
    if age > max_age:
        return CheckResult(False, text)
    return CheckResult(True, text, next_change_at=snap.newest.mtime + max_age)


def _writing_note(snap: TargetSnapshot, now: float) -> str:
    writing = snap.unsettled(now)
    return f" ({writing[-1].name} is still being written)" if writing else ""


def check_size(snap: TargetSnapshot, target: Target, now: float) -> CheckResult:
    """The newest complete backup: one still being written is judged once it settles."""
    if not snap.up:
        return _down(snap)
    newest = snap.settled_newest(now)
    if newest is None:
        if snap.newest is not None:
            text = f"first backup {snap.newest.name} is still being written"
            return CheckResult(True, text, snap.settles_at(now))
        return CheckResult(False, "no backup found")
    size, limit = humanize_size(newest.size), humanize_size(target.config.min_size)
    text = f"newest backup {newest.name} is {size} (min {limit})" + _writing_note(snap, now)
    return CheckResult(newest.size >= target.config.min_size, text, snap.settles_at(now))


def check_writing(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    """A backup that keeps changing for longer than ``max_write_time`` is stuck."""
    if target.config.remote:
        return None
    if not snap.up:
        return _down(snap)
    writing = snap.unsettled(now)
    if not writing:
        return CheckResult(True, "no backup is being written")
    oldest = min(writing, key=lambda w: w.first_seen)
    took, limit = now - oldest.first_seen, target.config.max_write_time
    text = (
        f"backup {oldest.name} still being written after {humanize_age(took)} "
        f"(max {format_duration(limit)})"
    )
    if took > limit:
        return CheckResult(False, text)
    settles = snap.settles_at(now)
    due = oldest.first_seen + limit
    return CheckResult(True, text, min(due, settles) if settles is not None else due)


def check_count(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    low, high = target.config.min_count, target.config.max_count
    if low is None and high is None:
        return None
    if not snap.up:
        return _down(snap)
    bounds = ", ".join(
        f"{word} {value}" for word, value in (("min", low), ("max", high)) if value is not None
    )
    ok = (low is None or snap.count >= low) and (high is None or snap.count <= high)
    return CheckResult(ok, f"{snap.count} backups ({bounds})")


def check_target_down(snap: TargetSnapshot, target: Target, now: float) -> CheckResult:
    if not snap.up:
        return CheckResult(False, f"{target.config.path}: {snap.error}")
    return CheckResult(True, f"{target.config.path} is readable")


def check_schedule(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    if target.schedule is None:
        return None
    if not snap.up:
        return _down(snap)
    newest = snap.newest.mtime if snap.newest else None
    run, deadline = target.schedule.expected(newest, now)
    grace = format_duration(target.schedule.grace)
    if now >= deadline:
        return CheckResult(
            False,
            f"no backup for the run of {target.local_time(run)} "
            f"({target.config.schedule}, grace {grace})",
        )
    return CheckResult(
        True, f"next backup expected for the run of {target.local_time(run)}", deadline
    )


def gap_window(target: Target) -> float:
    return target.config.retention or target.config.gap_window


def check_gaps(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    if not target.config.gaps_enabled:
        return None
    if not snap.up:
        return _down(snap)
    missing = missing_runs(snap.history, target.schedule, gap_window(target), now)
    limit = target.config.max_missing_runs
    window = format_duration(gap_window(target))
    if len(missing) > limit:
        shown = ", ".join(target.local_time(m) for m in missing[:10]) + (
            " ..." if len(missing) > 10 else ""
        )
        return CheckResult(
            False, f"{len(missing)} runs without a backup in the last {window}: {shown}"
        )
    return CheckResult(
        True, f"{len(missing)} runs without a backup in the last {window} (max {limit})"
    )


def _size_check(
    snap: TargetSnapshot, target: Target, now: float, limit: float | None, shrink: bool
) -> CheckResult | None:
    if limit is None or not target.config.size_history:
        return None
    if not snap.up:
        return _down(snap)
    settles = snap.settles_at(now)
    found = settled_size_ratio(snap, target.config.size_history, now)
    if found is None or found[1] is None:
        return CheckResult(True, "not enough backups to compare sizes", settles)
    newest, (ratio, median) = found
    text = (
        f"newest backup {newest.name} is {humanize_size(newest.size)}, "
        f"{ratio * 100:.0f}% of the median {humanize_size(median)} of the previous backups"
    ) + _writing_note(snap, now)
    failing = ratio < 1 - limit if shrink else ratio > 1 + limit
    return CheckResult(not failing, text, settles)


def check_shrink(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    return _size_check(snap, target, now, target.config.max_shrink, shrink=True)


def check_growth(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    return _size_check(snap, target, now, target.config.max_growth, shrink=False)


def check_retention(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    retention = target.config.retention
    if retention is None:
        return None
    if not snap.up:
        return _down(snap)
    grace = target.config.retention_grace
    violations = retention_violations(snap.history, retention, grace, now)
    limit = format_duration(retention)
    if violations:
        return CheckResult(
            False, f"{violations} backups older than the {limit} retention are still present"
        )
    next_change = snap.oldest.mtime + retention + grace if snap.oldest else None
    return CheckResult(True, f"no backup older than the {limit} retention", next_change)


def check_verify(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    verification = snap.verification
    if target.config.verify == "none" or verification is None:
        return None  # nothing verified yet: no verdict
    if not snap.up:
        return _down(snap)
    reason = f"{verification.name}: {verification.reason}"
    newest = snap.settled_newest(now)
    if snap.verification_pending(now) and newest is not None:
        reason += f" ({newest.name} not verified yet)"
    return CheckResult(verification.ok, reason)


def check_mirror(snap: TargetSnapshot, target: Target, now: float) -> CheckResult | None:
    if target.mirror_source is None:
        return None
    if not snap.up:
        return _down(snap)
    lag = mirror_lag(target, now)
    newest = target.mirror_source.index.snapshot().newest
    if lag is None or newest is None:
        return CheckResult(True, f"{target.config.mirror_of} has no backup to mirror")
    if lag == 0:
        return CheckResult(True, f"{newest.name} is mirrored")
    limit = target.config.mirror_lag
    text = (
        f"{newest.name} from {target.config.mirror_of} missing here for {humanize_age(lag)} "
        f"(max {format_duration(limit)})"
    )
    if lag > limit:
        return CheckResult(False, text)
    return CheckResult(True, text, next_change_at=newest.mtime + limit)


CHECKS: dict[str, Check] = {
    "age": check_age,
    "size": check_size,
    "writing": check_writing,
    "count": check_count,
    "target_down": check_target_down,
    "schedule": check_schedule,
    "gaps": check_gaps,
    "shrink": check_shrink,
    "growth": check_growth,
    "retention": check_retention,
    "verify": check_verify,
    "mirror": check_mirror,
}


def evaluate(snap: TargetSnapshot, target: Target, now: float) -> dict[str, CheckResult]:
    """Every applicable check's result, in CHECKS order."""
    results: dict[str, CheckResult] = {}
    for name, check in CHECKS.items():
        result = check(snap, target, now)
        if result is not None:
            results[name] = result
    return results


def check_states(snap: TargetSnapshot, target: Target, now: float) -> dict[str, bool]:
    """{check: passed}, the form the collector publishes."""
    return {name: result.ok for name, result in evaluate(snap, target, now).items()}


def check_list(snap: TargetSnapshot, target: Target, now: float) -> list[tuple[str, bool, str]]:
    """[(check, passed, reason)], the form the status page shows."""
    return [(name, r.ok, r.reason) for name, r in evaluate(snap, target, now).items()]
