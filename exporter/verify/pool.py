"""The verifier pool: checks each target's newest backup once it has settled.

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
    ) -> None:
        super().__init__("verifier", POLL, min_gap=MIN_GAP)  # an event storm: one round
        self.targets = targets
        self.stats = stats
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()

    def stop(self, timeout: float = 1.0) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().stop(timeout)

    def round(self) -> None:
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        for target in self.targets():
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
