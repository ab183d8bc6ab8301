"""The Prometheus collector: renders snapshots of every target at scrape time.

No gauges are kept between scrapes, so a removed target leaves no stale
series; ages are computed here, from the injected clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.counters import DaemonStats
from exporter.index import Clock, TargetSnapshot
from exporter.sources.jobs import JobStatus
from exporter.sources.watch import WATCH_MODES
from exporter.target import FUTURE_TOLERANCE, Target
from exporter.verify.drill import DrillStatus
from exporter.verify.pool import wants_verification

_TARGET_HELP = {
    "age_seconds": (
        "gauge",
        "Seconds since the newest backup was modified; +Inf when the target has no backup.",
    ),
    "newest_timestamp_seconds": (
        "gauge",
        "Modification time of the newest backup, in seconds since the epoch; 0 when none.",
    ),
    "oldest_timestamp_seconds": (
        "gauge",
        "Modification time of the oldest backup, in seconds since the epoch; 0 when none.",
    ),
    "count": (
        "gauge",
        "Number of backup files in the target. (Named _count on purpose, for dashboards "
        "built on the original textfile script; not a histogram.)",
    ),
    "newest_size_bytes": (
        "gauge",
        "Size of the newest complete backup in bytes (one still being written is not "
        "judged until it settles); 0 when none.",
    ),
    "in_progress": (
        "gauge",
        "1 while a backup is being written (changed within settle), else 0.",
    ),
    "in_progress_seconds": (
        "gauge",
        "How long the backup being written has been changing; 0 when none.",
    ),
    "max_write_time_seconds": (
        "gauge",
        "Configured threshold: a backup still changing after this long is stuck (max_write_time).",
    ),
    "total_size_bytes": ("gauge", "Total size of all backups in the target, in bytes."),
    "max_age_seconds": (
        "gauge",
        "Configured threshold: the newest backup must be at most this old (max_age).",
    ),
    "min_size_bytes": (
        "gauge",
        "Configured threshold: the newest backup must be at least this large (min_size).",
    ),
    "max_backups": (
        "gauge",
        "Configured threshold: at most this many backups (max_count; only where set).",
    ),
    "unparsed_files": (
        "gauge",
        "Files matching the patterns whose names give no timestamp (timestamp: name); "
        "not counted as backups.",
    ),
    "unreadable_entries": (
        "gauge",
        "Entries the last scan could not read (a path longer than PATH_MAX, a directory "
        "without permission); find(1) would count them.",
    ),
    "oldest_age_seconds": (
        "gauge",
        "Seconds since the oldest backup was made; +Inf when the target has no backup.",
    ),
    "next_expected_timestamp_seconds": (
        "gauge",
        "The scheduled run the next backup answers (schedule targets only), epoch seconds.",
    ),
    "deadline_timestamp_seconds": (
        "gauge",
        "When that run's backup is late: run time plus grace (schedule targets only).",
    ),
    "missing_runs": (
        "gauge",
        "Expected runs inside the backup series (retention or gap_window) with no backup.",
    ),
    "size_ratio": (
        "gauge",
        "Newest backup's size divided by the median size of the backups before it.",
    ),
    "retention_violations": (
        "gauge",
        "Backups older than the retention (plus retention_grace) that are still present.",
    ),
    "future_files": (
        "gauge",
        "Backups dated more than a minute in the future (a wrong clock or a bad name); "
        "ages are never negative.",
    ),
    "values_stale": (
        "gauge",
        "1 while a remote target cannot be listed and its series show the last good listing.",
    ),
    "mirror_lag_seconds": (
        "gauge",
        "How long the mirrored target's newest backup has been missing from this copy "
        "(same name and size); 0 when present (mirror_of targets only).",
    ),
    "verify_ok": (
        "gauge",
        "1 if the last content check (SQLite integrity, archive CRC, checksum) passed, "
        "0 if it failed; it refers to the backup it was computed for (see verify_pending); "
        "absent until the first verification and while the target is down.",
    ),
    "verify_pending": (
        "gauge",
        "1 while the newest complete backup has not been verified yet (verify_ok still "
        "refers to an earlier one), else 0.",
    ),
    "verify_timestamp_seconds": ("gauge", "When the last verification finished."),
    "verify_duration_seconds": ("gauge", "How long the last verification took."),
    "min_backups": (
        "gauge",
        "Configured threshold: at least this many backups (min_count; only where set).",
    ),
    "job_running": ("gauge", "1 while a run of the backup job is in progress (job: only)."),
    "job_last_start_timestamp_seconds": (
        "gauge",
        "When the latest run started (the one in progress, else the last finished one).",
    ),
    "job_last_end_timestamp_seconds": ("gauge", "When the last finished run ended."),
    "job_last_success_timestamp_seconds": ("gauge", "When the last successful run ended."),
    "job_last_exit_code": ("gauge", "Exit status of the last finished run (0: success)."),
    "job_last_duration_seconds": (
        "gauge",
        "How long the last finished run took (absent when its start was not reported).",
    ),
    "job_runs": ("counter", "Finished runs of the backup job, by result: success or failure."),
    "job_max_runtime_seconds": (
        "gauge",
        "Configured threshold: a run still in progress after this long has failed (max_runtime).",
    ),
    "drill_ok": (
        "gauge",
        "1 if the last restore drill passed (every backup it restored), 0 if it failed; "
        "absent until the first drill (drill: only).",
    ),
    "drill_last_run_timestamp_seconds": ("gauge", "When the last restore drill ended."),
    "drill_last_success_timestamp_seconds": (
        "gauge",
        "When the last restore drill that passed ended.",
    ),
    "drill_duration_seconds": (
        "gauge",
        "How long the last drill took to restore the newest backup, copy to comparison: "
        "the restore time.",
    ),
    "drill_runs": ("counter", "Restore drills run, by result: success or failure."),
    "filesystem_avail_bytes": (
        "gauge",
        "Bytes an unprivileged writer can still use on the target's filesystem (statvfs).",
    ),
    "filesystem_size_bytes": ("gauge", "Size of the target's filesystem in bytes."),
    "capacity_runs_left": (
        "gauge",
        "How many more backups of the expected size (the median of the recent ones, or the "
        "newest) fit in the free space.",
    ),
    "retention_need_bytes": (
        "gauge",
        "Bytes the retention window still needs: the backups it will hold at the expected "
        "size, minus what is stored (retention with a schedule or max_age).",
    ),
    "insecure_files": (
        "gauge",
        "Backups and directories breaking the permission policy (file_mode, dir_mode, "
        "owner, group).",
    ),
    "check_ok": ("gauge", "1 if the named check passes for the target, 0 if it fails."),
    "target_up": ("gauge", "1 if the target directory exists and can be read, 0 if not."),
}


class _Families:
    """Metric families keyed by suffix, filled sample by sample."""

    def __init__(self, prefix: str, help_texts: dict[str, tuple[str, str]]) -> None:
        self.prefix = prefix
        self.metrics = {
            suffix: Metric(f"{prefix}_{suffix}", text, kind)
            for suffix, (kind, text) in help_texts.items()
        }

    def filled(self) -> Iterator[Metric]:
        """The families that have samples (a threshold set on no target is left out)."""
        return (m for m in self.metrics.values() if m.samples)

    def add(self, suffix: str, labels: dict[str, str], value: float) -> None:
        metric = self.metrics[suffix]
        name = metric.name + ("_total" if metric.type == "counter" else "")
        metric.add_sample(name, labels, value)


_HEALTH_HELP = {
    "scans": ("counter", "Full scans of the target (initial, reconciliation and retries)."),
    "scan_errors": ("counter", "Scans that failed because the target could not be read."),
    "last_scan_timestamp_seconds": (
        "gauge",
        "When the last full scan of the target finished, in seconds since the epoch.",
    ),
    "scan_duration_seconds": ("gauge", "How long the last full scan of the target took."),
    "reconcile_corrections": (
        "counter",
        "Index entries a reconciliation rescan had to correct (events the watcher missed).",
    ),
}


class BackupCollector(Collector):
    def __init__(
        self,
        targets: Callable[[], Sequence[Target]],
        stats: DaemonStats | None,
        namespace: str = "backup",
        clock: Clock = time.time,
    ) -> None:
        self.targets = targets
        self.stats = stats
        self.namespace = namespace
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        fams = _Families(self.namespace, _TARGET_HELP)
        health = _Families("backup_monitor", _HEALTH_HELP)
        modes = Metric(
            "backup_monitor_watch_mode",
            "How each local target is watched: 1 for the mode in use (inotify, or polling on "
            "network and FUSE filesystems and where inotify ran out of watches).",
            "gauge",
        )
        for target in self.targets():
            snap = target.index.snapshot()
            self._add_target(fams, target, snap, now)
            labels = {"target": target.name, **target.config.labels}
            health.add("scans", labels, snap.scans)
            health.add("scan_errors", labels, snap.scan_errors)
            health.add("last_scan_timestamp_seconds", labels, snap.last_scan)
            health.add("scan_duration_seconds", labels, snap.last_scan_duration)
            health.add("reconcile_corrections", labels, snap.corrections)
            if not target.config.remote:
                for mode in WATCH_MODES:
                    modes.add_sample(
                        modes.name, {**labels, "mode": mode}, mode == target.watch_mode
                    )
        yield from fams.filled()
        yield from self._exporter_metrics()
        if self.stats is not None:  # a one-shot `check --textfile` has no watcher
            yield modes
        yield from health.filled()

    def _add_target(
        self, fams: _Families, target: Target, snap: TargetSnapshot, now: float
    ) -> None:
        cfg = target.config
        labels = {"target": target.name, **cfg.labels}
        newest, oldest = snap.newest, snap.oldest
        complete = snap.settled_newest(now)
        writing = snap.unsettled(now)
        fams.add("age_seconds", labels, max(0.0, now - newest.mtime) if newest else math.inf)
        fams.add("newest_timestamp_seconds", labels, newest.mtime if newest else 0)
        fams.add("oldest_timestamp_seconds", labels, oldest.mtime if oldest else 0)
        fams.add("count", labels, snap.count)
        fams.add("newest_size_bytes", labels, complete.size if complete else 0)
        fams.add("total_size_bytes", labels, snap.total_size)
        if not cfg.remote:
            fams.add("in_progress", labels, 1 if writing else 0)
            started = min((w.first_seen for w in writing), default=now)
            fams.add("in_progress_seconds", labels, max(0.0, now - started))
            fams.add("max_write_time_seconds", labels, cfg.max_write_time)
        if cfg.effective_max_age is not None:
            fams.add("max_age_seconds", labels, cfg.effective_max_age)
        fams.add("min_size_bytes", labels, cfg.min_size)
        if cfg.min_count is not None:
            fams.add("min_backups", labels, cfg.min_count)
        if cfg.max_count is not None:
            fams.add("max_backups", labels, cfg.max_count)
        fams.add("unparsed_files", labels, snap.unparsed)
        if not cfg.remote:
            fams.add("unreadable_entries", labels, snap.unreadable)
        fams.add("future_files", labels, target.index.count_after(now + FUTURE_TOLERANCE))
        fams.add("oldest_age_seconds", labels, max(0.0, now - oldest.mtime) if oldest else math.inf)
        if cfg.remote:
            fams.add("values_stale", labels, int(snap.stale))
        if snap.verification is not None and snap.up:
            fams.add("verify_ok", labels, int(snap.verification.ok))
            fams.add("verify_timestamp_seconds", labels, snap.verification.finished_at)
            fams.add("verify_duration_seconds", labels, snap.verification.duration)
        if wants_verification(target):
            fams.add("verify_pending", labels, int(snap.up and snap.verification_pending(now)))
        if target.job is not None and cfg.job is not None:
            self._add_job(fams, target.job.status, labels, cfg.job.max_runtime)
        if target.drill is not None:
            self._add_drill(fams, target.drill.status, labels)
        self._add_evaluation(fams, target, labels, now)
        fams.add("target_up", labels, 1 if snap.up else 0)

    @staticmethod
    def _add_drill(fams: _Families, status: DrillStatus, labels: dict[str, str]) -> None:
        if status.results and status.ran_at is not None:
            fams.add("drill_ok", labels, int(bool(status.ok)))
            fams.add("drill_last_run_timestamp_seconds", labels, status.ran_at)
            fams.add("drill_duration_seconds", labels, status.results[0].duration)
        if status.last_success_at is not None:
            fams.add("drill_last_success_timestamp_seconds", labels, status.last_success_at)
        fams.add("drill_runs", {**labels, "result": "success"}, status.successes)
        fams.add("drill_runs", {**labels, "result": "failure"}, status.failures)

    @staticmethod
    def _add_job(
        fams: _Families, status: JobStatus, labels: dict[str, str], max_runtime: float
    ) -> None:
        last = status.last
        fams.add("job_running", labels, int(status.running_since is not None))
        started = status.running_since
        if started is None and last is not None:
            started = last.started_at
        if started is not None:
            fams.add("job_last_start_timestamp_seconds", labels, started)
        if last is not None:
            fams.add("job_last_end_timestamp_seconds", labels, last.ended_at)
            fams.add("job_last_exit_code", labels, last.exit_code)
            if last.duration is not None:
                fams.add("job_last_duration_seconds", labels, last.duration)
        if status.last_success is not None:
            fams.add("job_last_success_timestamp_seconds", labels, status.last_success.ended_at)
        fams.add("job_runs", {**labels, "result": "success"}, status.successes)
        fams.add("job_runs", {**labels, "result": "failure"}, status.failures)
        fams.add("job_max_runtime_seconds", labels, max_runtime)

    @staticmethod
    def _add_evaluation(
        fams: _Families, target: Target, labels: dict[str, str], now: float
    ) -> None:
        """The verdicts and the figures the checks computed: rendered, never recomputed."""
        evaluation = target.evaluation
        if evaluation is None:
            return  # not evaluated yet (the first round runs before the server starts)
        figures: dict[str, float] = {}
        for check, result in evaluation.results.items():
            fams.add("check_ok", {**labels, "check": check}, 1 if result.ok else 0)
            figures.update(result.figures)
            figures.update((name, max(0.0, now - at)) for name, at in result.since.items())
        for name, figure in figures.items():
            fams.add(name, labels, figure)

    def _exporter_metrics(self) -> Iterator[Metric]:
        info = Metric("backup_monitor_build", "backup-monitor's version; always 1.", "info")
        info.add_sample("backup_monitor_build_info", {"version": __version__}, 1)
        yield info
        if self.stats is None:
            return
        events = Metric(
            "backup_monitor_watch_events",
            "File system events received from the watcher (inotify or polling).",
            "counter",
        )
        events.add_sample("backup_monitor_watch_events_total", {}, self.stats.events)
        yield events
        verifications = Metric(
            "backup_monitor_verifications",
            "Content checks of newest backups, by result: ok, failed (the backup is broken) "
            "or error (it could not be verified: no space for a temporary copy, unreadable).",
            "counter",
        )
        for result, count in self.stats.verifications.items():
            verifications.add_sample(
                "backup_monitor_verifications_total", {"result": result}, count
            )
        yield verifications
