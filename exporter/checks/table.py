"""The checks: small pure functions of (snapshot, target, now, source snapshot), and the
table that says everything else about each (summary, Prometheus alert, runbook).

A check returns a CheckResult, or None when it does not apply to the target
(``count`` without bounds, ``schedule`` without a cron expression...).
``next_change_at`` is the moment the result can flip with no file activity at
all (the newest backup crossing ``max_age``, a schedule's deadline), so the
evaluator sleeps until exactly then instead of polling. The figures a check
computes (missing runs, size ratio, ...) travel in its result, so the collector
publishes them without computing anything. Adding a check is adding one function
and one record to CHECKS; a test asserts its rule and runbook entry exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median

from exporter.checks.history import (
    mirror_copy,
    missing_runs,
    retention_violations,
    settled_size_ratio,
)
from exporter.evaluation import INTERNAL_ERROR, CheckResult, Evaluation
from exporter.index import TargetSnapshot
from exporter.target import Target
from exporter.units import format_duration, humanize_age, humanize_size
from exporter.verify.drill import DrillResult

log = logging.getLogger(__name__)

# (the target's snapshot, the target, now, the mirrored target's snapshot or None)
Check = Callable[[TargetSnapshot, Target, float, TargetSnapshot | None], CheckResult | None]

# An evaluation older than this is computed again even if nothing changed, so reasons
# that quote an age ("is 3h 5m old") stay true to within this on the status page.
REFRESH = 60.0


def _down(snap: TargetSnapshot) -> CheckResult:
    return CheckResult(False, f"target is down: {snap.error}")


def check_age(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
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


def check_size(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult:
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


def check_writing(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
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


def check_count(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
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


def check_target_down(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult:
    if not snap.up:
        return CheckResult(False, f"{target.config.path}: {snap.error}")
    return CheckResult(True, f"{target.config.path} is readable")


def check_schedule(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    if target.schedule is None:
        return None
    if not snap.up:
        return _down(snap)
    newest = snap.newest.mtime if snap.newest else None
    run, deadline = target.schedule.expected(newest, now)
    grace = format_duration(target.schedule.grace)
    figures = {"next_expected_timestamp_seconds": run, "deadline_timestamp_seconds": deadline}
    if now >= deadline:
        return CheckResult(
            False,
            f"no backup for the run of {target.local_time(run)} "
            f"({target.config.schedule}, grace {grace})",
            figures=figures,
        )
    return CheckResult(
        True,
        f"next backup expected for the run of {target.local_time(run)}",
        deadline,
        figures,
    )


def gap_window(target: Target) -> float:
    return target.config.retention or target.config.gap_window


def check_gaps(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    if not target.config.gaps_enabled:
        return None
    if not snap.up:
        return _down(snap)
    missing = missing_runs(snap.history, target.schedule, gap_window(target), now)
    limit = target.config.max_missing_runs
    window = format_duration(gap_window(target))
    figures = {"missing_runs": float(len(missing))}
    if len(missing) > limit:
        shown = ", ".join(target.local_time(m) for m in missing[:10]) + (
            " ..." if len(missing) > 10 else ""
        )
        return CheckResult(
            False,
            f"{len(missing)} runs without a backup in the last {window}: {shown}",
            figures=figures,
        )
    return CheckResult(
        True,
        f"{len(missing)} runs without a backup in the last {window} (max {limit})",
        figures=figures,
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
    return CheckResult(not failing, text, settles, {"size_ratio": ratio})


def check_shrink(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    return _size_check(snap, target, now, target.config.max_shrink, shrink=True)


def check_growth(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    return _size_check(snap, target, now, target.config.max_growth, shrink=False)


def check_retention(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    retention = target.config.retention
    if retention is None:
        return None
    if not snap.up:
        return _down(snap)
    grace = target.config.retention_grace
    violations = retention_violations(snap.history, retention, grace, now)
    limit = format_duration(retention)
    figures = {"retention_violations": float(violations)}
    if violations:
        return CheckResult(
            False,
            f"{violations} backups older than the {limit} retention are still present",
            figures=figures,
        )
    next_change = snap.oldest.mtime + retention + grace if snap.oldest else None
    return CheckResult(True, f"no backup older than the {limit} retention", next_change, figures)


def check_verify(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    verification = snap.verification
    if target.config.verify.kind == "none" or verification is None:
        return None  # nothing verified yet: no verdict
    if not snap.up:
        return _down(snap)
    reason = f"{verification.name}: {verification.reason}"
    newest = snap.settled_newest(now)
    if snap.verification_pending(now) and newest is not None:
        reason += f" ({newest.name} not verified yet)"
    return CheckResult(verification.ok, reason)


def check_mirror(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """The mirrored target's newest backup must be here (same name and size) within
    ``mirror_lag``; ``source`` is that target's snapshot."""
    if target.mirror_source is None or source is None:
        return None
    if not snap.up:
        return _down(snap)
    newest = source.newest
    if newest is None:
        return CheckResult(True, f"{target.config.mirror_of} has no backup to mirror")
    if mirror_copy(snap, newest):
        return CheckResult(True, f"{newest.name} is mirrored", figures={"mirror_lag_seconds": 0})
    lag, limit = max(0.0, now - newest.mtime), target.config.mirror_lag
    text = (
        f"{newest.name} from {target.config.mirror_of} missing here for {humanize_age(lag)} "
        f"(max {format_duration(limit)})"
    )
    since = {"mirror_lag_seconds": newest.mtime}
    if lag > limit:
        return CheckResult(False, text, since=since)
    return CheckResult(True, text, next_change_at=newest.mtime + limit, since=since)


# Backup names carry whole seconds, some filesystems two: "written since the run
# started" allows for that much.
STAMP_TOLERANCE = 2.0
# A failed run's notification quotes this much of its output.
EXCERPT_LINES, EXCERPT_WIDTH = 20, 300


def _excerpt(tail: str) -> str:
    """The first lines of a run's output tail, for a human reading the notification."""
    lines = tail.strip("\n").splitlines()
    shown = [line[:EXCERPT_WIDTH] for line in lines[:EXCERPT_LINES]]
    if len(lines) > EXCERPT_LINES:
        shown.append(f"... ({len(lines) - EXCERPT_LINES} more lines)")
    return "\n".join(shown)


def check_job(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """The last finished run failed, or the one in progress outran ``max_runtime``."""
    job = target.config.job
    if job is None or target.job is None:
        return None
    status = target.job.status
    due = None
    if status.running_since is not None:
        took, limit = now - status.running_since, job.max_runtime
        if took > limit:
            return CheckResult(
                False,
                f"the run started at {target.local_time(status.running_since, True)} is still "
                f"running after {humanize_age(took)} (max_runtime {format_duration(limit)})",
            )
        due = status.running_since + limit
    last = status.last
    if last is None:
        return CheckResult(True, "no run reported yet", due)
    took = f" after {humanize_age(last.duration)}" if last.duration is not None else ""
    text = (
        f"the run that ended at {target.local_time(last.ended_at, True)}{took} "
        f"exited with status {last.exit_code}"
    )
    if not last.ok:
        return CheckResult(False, text, due, detail=_excerpt(last.tail))
    return CheckResult(True, text, due)


def check_job_output(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """A run that reported success must leave a new backup within ``output_grace``: one
    dated at or after the run's start (unknown start: ``max_runtime`` before its end)."""
    job = target.config.job
    if job is None or target.job is None:
        return None
    run = target.job.status.last_success
    if run is None:
        return CheckResult(True, "no successful run reported yet")
    if not snap.up:
        return _down(snap)
    began = run.started_at if run.started_at is not None else run.ended_at - job.max_runtime
    ended = target.local_time(run.ended_at, True)
    newest = snap.newest
    if newest is not None and newest.mtime >= began - STAMP_TOLERANCE:
        return CheckResult(True, f"the run that ended at {ended} wrote {newest.name}")
    grace = format_duration(job.output_grace)
    deadline = run.ended_at + job.output_grace
    if now < deadline:
        text = f"waiting for the backup of the run that ended at {ended}"
        return CheckResult(True, text, deadline)
    found = f" (newest: {newest.name})" if newest is not None else ""
    return CheckResult(
        False,
        f"the job reported success at {ended} but wrote no backup within {grace}{found}",
    )


def expected_size(snap: TargetSnapshot, target: Target, now: float) -> int | None:
    """The size the next backup is expected to have: the median of the recent complete
    ones where the history is kept, else the newest complete one."""
    newest = snap.settled_newest(now)
    if newest is None:
        return None
    recent = [size for _ts, _name, size in snap.history[-(target.config.size_history or 1) :]]
    return int(median(recent)) if len(recent) > 1 else newest.size


def backups_per(span: float, target: Target, now: float) -> float | None:
    """How many backups ``span`` holds: by the schedule, else one per ``max_age``."""
    if target.schedule is not None:
        return float(len(target.schedule.runs_between(now, now + span)))
    max_age = target.config.effective_max_age
    return span / max_age if max_age else None


def check_capacity(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """Free space on the target's filesystem: at least ``min_free``, and room for
    ``min_free_runs`` more backups of the expected size. Without either it only
    publishes the figures."""
    cfg = target.config
    if cfg.remote or snap.space is None:
        return None
    if not snap.up:
        return _down(snap)
    avail, size = snap.space.avail, snap.space.size
    figures = {"filesystem_avail_bytes": float(avail), "filesystem_size_bytes": float(size)}
    expected = expected_size(snap, target, now)
    runs = avail / expected if expected else None
    if runs is not None:
        figures["capacity_runs_left"] = runs
    count = backups_per(cfg.retention, target, now) if cfg.retention and expected else None
    if count is not None and expected:
        figures["retention_need_bytes"] = max(0.0, count * expected - snap.total_size)
    problems = []
    if cfg.min_free is not None and avail < cfg.min_free:
        problems.append(f"{humanize_size(avail)} free (min_free {humanize_size(cfg.min_free)})")
    if cfg.min_free_runs is not None and runs is not None and runs < cfg.min_free_runs:
        problems.append(
            f"room for {runs:.1f} more backups of {humanize_size(expected or 0)} "
            f"(min_free_runs {cfg.min_free_runs:g})"
        )
    if problems:
        return CheckResult(False, "; ".join(problems), figures=figures)
    text = f"{humanize_size(avail)} free of {humanize_size(size)}"
    if runs is not None:
        text += f", room for {runs:.0f} more backups of {humanize_size(expected or 0)}"
    return CheckResult(True, text, figures=figures)


def check_permissions(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """Backups and their directories within ``file_mode``, ``dir_mode``, owner, group."""
    if target.policy is None:
        return None
    if not snap.up:
        return _down(snap)
    count = snap.insecure_count
    figures = {"insecure_files": float(count)}
    if not count:
        return CheckResult(
            True, "backups and directories within the permission policy", figures=figures
        )
    shown = ", ".join(f"{path}: {what}" for path, what in snap.insecure)
    more = f" and {count - len(snap.insecure)} more" if count > len(snap.insecure) else ""
    paths = "1 path breaks" if count == 1 else f"{count} paths break"
    return CheckResult(False, f"{paths} the permission policy: {shown}{more}", figures=figures)


def check_encryption(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """With ``encryption: required``, the newest complete backup must be encrypted, as its
    first bytes show (age, OpenPGP, openssl enc), whatever its name says."""
    if target.config.encryption != "required":
        return None
    if not snap.up:
        return _down(snap)
    newest, envelope = snap.settled_newest(now), snap.envelope
    if newest is None:
        return CheckResult(True, "no complete backup yet")
    if envelope is None or (envelope.name, envelope.size, envelope.stamp) != (
        newest.name,
        newest.size,
        newest.mtime,
    ):
        return CheckResult(True, f"{newest.name} not examined yet")
    if envelope.encryption is None:
        return CheckResult(False, f"{envelope.name}: {envelope.looks_like} in plaintext")
    return CheckResult(True, f"{envelope.name}: {envelope.looks_like}")


def _drill_text(result: DrillResult) -> str:
    return f"drill of {result.backup}: {result.reason}"


def check_drill(
    snap: TargetSnapshot, target: Target, now: float, source: TargetSnapshot | None = None
) -> CheckResult | None:
    """The last drill failed, or no drill has succeeded within two schedule periods."""
    if target.config.drill is None or target.drill is None or target.drill_schedule is None:
        return None
    status = target.drill.status
    failed = [r for r in status.results if not r.ok]
    if failed:
        detail = "\n".join(_drill_text(r) for r in status.results)
        return CheckResult(False, _drill_text(failed[0]), detail=detail)
    start = status.last_success_at or status.since
    # Two periods after the last success (or since drills began), plus one drill's time.
    schedule = target.drill_schedule
    deadline = schedule.next_after(schedule.next_after(start)) + schedule.grace
    if now > deadline:
        since = target.local_time(start)
        return CheckResult(
            False,
            f"no successful drill since {since} ({target.config.drill.schedule}: two runs missed)",
        )
    if not status.results:
        return CheckResult(
            True, f"first drill due {target.local_time(schedule.next_after(start))}", deadline
        )
    text = "; ".join(_drill_text(r) for r in status.results)
    return CheckResult(True, text, deadline)


RUNBOOK = "https://github.com/backup-monitor/backup-monitor/blob/main/docs/runbook.md"


@dataclass(frozen=True)
class CheckSpec:
    """Everything the program knows of one check; the rest is derived from this table."""

    name: str
    summary: str  # the notification's title: "[FIRING] {summary}: {target}"
    function: Check
    alert: str  # the bundled Prometheus rule that mirrors it (its alertname)
    needs_history: bool = False  # whether it looks past the newest backup
    severity: str = "warning"  # as in its rule; posted to Alertmanager with the alert

    @property
    def runbook(self) -> str:
        """Its anchor in the runbook (one heading per alert)."""
        return self.alert.lower()

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK}#{self.runbook}"


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("age", "backup too old", check_age, "BackupTooOld", severity="critical"),
    CheckSpec("size", "backup too small", check_size, "BackupTooSmall"),
    CheckSpec("writing", "backup still being written", check_writing, "BackupStuckWriting"),
    CheckSpec("count", "too few backups", check_count, "BackupCountLow"),
    CheckSpec(
        "target_down",
        "backup directory unreadable",
        check_target_down,
        "BackupTargetDown",
        severity="critical",
    ),
    CheckSpec("schedule", "backup late", check_schedule, "BackupLate", severity="critical"),
    CheckSpec("gaps", "backups missing from the series", check_gaps, "BackupRunsMissing", True),
    CheckSpec("shrink", "backup shrank", check_shrink, "BackupShrunk", True),
    CheckSpec("growth", "backup grew", check_growth, "BackupGrew", True),
    CheckSpec(
        "retention", "old backups not pruned", check_retention, "BackupRetentionViolated", True
    ),
    CheckSpec(
        "verify",
        "backup failed verification",
        check_verify,
        "BackupVerifyFailed",
        severity="critical",
    ),
    CheckSpec("mirror", "off-site copy missing", check_mirror, "BackupMirrorLagging", True),
    CheckSpec("job", "backup job failed", check_job, "BackupJobFailed", severity="critical"),
    CheckSpec(
        "job_output",
        "backup job wrote no backup",
        check_job_output,
        "BackupJobNoOutput",
        severity="critical",
    ),
    CheckSpec(
        "drill", "restore drill failed", check_drill, "BackupDrillFailed", severity="critical"
    ),
    CheckSpec("capacity", "backup disk filling up", check_capacity, "BackupCapacityLow"),
    CheckSpec(
        "permissions", "backups readable by others", check_permissions, "BackupPermissionsOpen"
    ),
    CheckSpec(
        "encryption",
        "backup not encrypted",
        check_encryption,
        "BackupNotEncrypted",
        severity="critical",
    ),
)
BY_NAME = {spec.name: spec for spec in CHECKS}
SUMMARIES = {spec.name: spec.summary for spec in CHECKS}

ErrorHandler = Callable[[str, str], None]
_logged_errors: set[tuple[str, str]] = set()


def evaluate(
    snap: TargetSnapshot,
    target: Target,
    now: float,
    source: TargetSnapshot | None = None,
    on_error: ErrorHandler | None = None,
) -> dict[str, CheckResult]:
    """Every applicable check's result, in table order.

    A check that raises is reported not ok ("internal error"), logged once per target
    and check, and passed to ``on_error``; the others are unaffected.
    """
    results: dict[str, CheckResult] = {}
    for spec in CHECKS:
        try:
            result = spec.function(snap, target, now, source)
        except Exception:  # one broken check must not take the others (or /metrics) down
            if (target.name, spec.name) not in _logged_errors:
                _logged_errors.add((target.name, spec.name))
                log.exception("check %s of target %s failed", spec.name, target.name)
            if on_error is not None:
                on_error(target.name, spec.name)
            result = CheckResult(False, INTERNAL_ERROR)
        if result is not None:
            results[spec.name] = result
    return results


def evaluate_target(target: Target, now: float, on_error: ErrorHandler | None = None) -> Evaluation:
    """The target's evaluation, computed again only when due (its snapshot, the mirrored
    target's, its job or drill record changed; time crossed a deadline; or it is REFRESH old)."""
    # The job's version is read before the checks read its status: a run reported in
    # between makes the key stale, so the next round computes it again.
    job = target.job.status.version if target.job is not None else -1
    drill = target.drill.status.version if target.drill is not None else -1
    snap = target.index.snapshot()
    source = target.mirror_source.index.snapshot() if target.mirror_source else None
    key = (snap.version, source.version if source is not None else -1, job, drill)
    current = target.evaluation
    if current is not None and not current.due(key, now) and now - current.at < REFRESH:
        return current
    errors: list[str] = []

    def failed(target_name: str, check: str) -> None:
        errors.append(check)
        if on_error is not None:
            on_error(target_name, check)

    results = evaluate(snap, target, now, source, failed)
    evaluation = Evaluation(key, now, results, tuple(errors))
    target.evaluation = evaluation  # published whole: readers see the old or the new
    return evaluation
