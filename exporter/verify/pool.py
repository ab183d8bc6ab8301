"""The verifier pool: checks each target's newest backup once it has settled, and runs
the restore drills that are due (one at a time per target).

Off the scan and scrape paths: one small thread watches for a new newest backup,
waits until its size and mtime have not changed for ``settle`` (a backup still
being written is never judged), then hands it to a bounded pool of workers. The
time limit grows with the file's size, so a 1 GB backup gets the time it needs
and never stalls metrics. Results go into the target's index (one source of truth).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from exporter.config import DrillConfig
from exporter.counters import DaemonStats
from exporter.index import Clock, Verification
from exporter.loop import Loop
from exporter.sources.listing import TargetUnavailable
from exporter.sources.object_storage import download
from exporter.target import Target
from exporter.verify.content import (
    VerifyOptions,
    VerifyResult,
    VerifyUnavailable,
    private_copy,
    verify_file,
)
from exporter.verify.drill import DrillResult, pick_backups, run_drill, scratch_dir
from exporter.verify.envelope import sniff

log = logging.getLogger(__name__)

# The size-aware part of the time limit: one more second per this many bytes.
BYTES_PER_SECOND = 10 * 1024 * 1024
POLL = 1.0
MIN_GAP = 0.1


def options_for(target: Target, size: int) -> VerifyOptions:
    cfg = target.config
    return VerifyOptions(
        kind=cfg.verify.kind,
        sqlite_check=cfg.verify.sqlite_check,
        query=cfg.verify.query,
        timeout=cfg.verify.timeout + size / BYTES_PER_SECOND,
        max_bytes=cfg.verify.max_bytes,
        identity=cfg.decrypt_identity,
    )


def wants_verification(target: Target) -> bool:
    """Local targets unless ``verify: none``; remote ones only with ``verify: download``."""
    if target.config.remote:
        return target.config.verify.kind == "download"
    return target.config.verify.kind not in ("none", "download")


def _verify_remote(target: Target, name: str, size: int) -> VerifyResult | None:
    """Download into a private temporary copy (always removed), then verify it."""
    try:
        with private_copy("-" + os.path.basename(name), size) as (handle, path, _room):
            download(target.config, name, handle, target.config.verify.max_download)
            return verify_file(path, replace(options_for(target, size), kind="auto"))
    except (TargetUnavailable, VerifyUnavailable) as exc:
        failed = "download failed: " if isinstance(exc, TargetUnavailable) else ""
        return VerifyResult(False, f"cannot verify: {failed}{exc}", "download", 0.0, error=True)


def verify_newest(target: Target, clock: Clock) -> Verification | VerifyResult | None:
    """Verify a target's newest complete backup now (for `check` and the pool's workers).

    A VerifyResult is returned when it could not be verified (``error``): no verdict.
    """
    newest = target.index.snapshot().settled_newest(clock())
    if newest is None or not wants_verification(target):
        return None
    if target.config.remote:
        result = _verify_remote(target, newest.name, newest.size)
    else:
        path = os.path.join(target.config.path, newest.name)
        result = verify_file(path, options_for(target, newest.size))
    if result is None or result.error:
        return result
    return Verification(
        newest.name,
        result.ok,
        result.reason,
        result.method,
        clock(),
        result.duration,
        newest.size,
        newest.mtime,
    )


def drill_target(
    target: Target, state_dir: str, clock: Clock, backup: str | None = None
) -> list[DrillResult]:
    """One drill round: the backups the target's ``drill.pick`` names (or ``backup``),
    each restored and judged. The same procedure for the daemon and `drill`."""
    config = target.config.drill or DrillConfig()
    scratch = scratch_dir(config, state_dir, target.name)
    if backup is not None:
        return [run_drill(backup, os.stat(backup).st_mtime, config, scratch, clock)]
    snap = target.index.snapshot()
    newest = snap.settled_newest(clock())
    if newest is None:
        why = "no backup to restore"
        if snap.newest is not None:
            why = f"{snap.newest.name} is still being written (settle {snap.settle:g}s)"
        return [DrillResult("none", 0.0, False, why, clock(), 0.0)]
    picked = pick_backups(target.index.files(), newest.name, config.pick)
    return [
        run_drill(os.path.join(target.config.path, name), stamp, config, scratch, clock)
        for name, stamp in picked
    ]


def examine(target: Target, now: float) -> None:
    """Read what the newest complete backup is (its first bytes), once per backup, for
    ``encryption: required``."""
    snap = target.index.snapshot()
    newest = snap.settled_newest(now)
    if newest is None:
        return
    known = snap.envelope
    if known is not None and (known.name, known.size, known.stamp) == (
        newest.name,
        newest.size,
        newest.mtime,
    ):
        return
    path = os.path.join(target.config.path, newest.name)
    envelope = sniff(path, newest.name, newest.size, newest.mtime)
    if envelope is not None:
        target.index.set_envelope(envelope)


@dataclass
class _Watch:
    key: tuple[str, int, float] | None = None  # the newest entry being settled
    stat: tuple[int, float] | None = None
    since: float = 0.0
    busy: bool = False
    done: tuple[str, int, float] | None = None  # the last entry verified


class Verifier(Loop):
    def __init__(
        self,
        targets: Callable[[], Sequence[Target]],
        stats: DaemonStats,
        workers: int,
        clock: Clock = time.time,
        state_dir: str = "",
    ) -> None:
        super().__init__("verifier", POLL, min_gap=MIN_GAP)  # an event storm: one round
        self.targets = targets
        self.stats = stats
        self.clock = clock
        self.state_dir = state_dir  # default scratch directories of drills live under it
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self._watches: dict[str, _Watch] = {}
        self._drilling: set[str] = set()  # one drill at a time per target
        self._lock = threading.Lock()

    def stop(self, timeout: float = 1.0) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().stop(timeout)

    def round(self) -> None:
        self.tick()
        self.start_due_drills()

    def start_due_drills(self) -> None:
        """Hand each target whose drill is due to the pool (once it has been scanned)."""
        now = self.clock()
        for target in self.targets():
            record, schedule = target.drill, target.drill_schedule
            if record is None or schedule is None or not target.index.snapshot().scanned:
                continue
            status = record.status
            if now < schedule.next_after(status.ran_at or status.since):
                continue
            with self._lock:
                if target.name in self._drilling:
                    continue
                self._drilling.add(target.name)
            self._pool.submit(self._drill, target)

    def _drill(self, target: Target) -> None:
        try:
            results = drill_target(target, self.state_dir, self.clock)
            assert target.drill is not None
            target.drill.add_round(results)
            for result in results:
                level = logging.INFO if result.ok else logging.WARNING
                log.log(
                    level, "target %s: drill of %s: %s", target.name, result.backup, result.reason
                )
        except Exception:  # a drill bug must not lose the worker
            log.exception("drill of target %s failed", target.name)
        finally:
            with self._lock:
                self._drilling.discard(target.name)

    def tick(self) -> None:
        now = self.clock()
        for target in self.targets():
            if target.config.encryption == "required":
                examine(target, now)
            if not wants_verification(target):
                continue
            newest = target.index.snapshot().settled_newest(now)
            if newest is None:
                continue
            with self._lock:
                watch = self._watches.setdefault(target.name, _Watch())
                key = (newest.name, newest.size, newest.mtime)
                if watch.busy or watch.done == key:
                    continue
            if target.config.remote:
                current = (newest.size, newest.mtime)  # listed objects are complete
            else:
                try:
                    st = os.stat(os.path.join(target.config.path, newest.name))
                except OSError:
                    continue  # gone; the index will hear of it
                current = (st.st_size, st.st_mtime)
            with self._lock:
                if watch.key != key or watch.stat != current:
                    # Unchanged since its mtime counts as settled already.
                    # A listed object is complete: no settling for remote targets.
                    since = 0.0 if target.config.remote else min(now, current[1])
                    watch.key, watch.stat, watch.since = key, current, since
                if now - watch.since < target.config.settle:
                    continue
                watch.busy = True
            self._pool.submit(self._verify, target, watch, key)

    def _verify(self, target: Target, watch: _Watch, key: tuple[str, int, float]) -> None:
        try:
            verification = verify_newest(target, self.clock)
        except Exception:  # a verifier bug must not lose the worker
            log.exception("verifying %s of target %s failed", key[0], target.name)
            verification = None
        with self._lock:
            watch.busy = False
            watch.done = key
        if verification is None:
            return
        if isinstance(verification, VerifyResult):  # could not verify: no verdict
            self.stats.count_verification("error")
            log.warning("target %s: %s: %s", target.name, key[0], verification.reason)
            return
        self.stats.count_verification("ok" if verification.ok else "failed")
        level = logging.INFO if verification.ok else logging.WARNING
        log.log(level, "target %s: %s: %s", target.name, verification.name, verification.reason)
        target.index.set_verification(verification)
