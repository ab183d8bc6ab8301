"""A configured target: its config, index, matcher, timestamp parser and schedule, and
the latest evaluation of its checks. What every other part of the daemon reads."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from exporter.config import TargetConfig
from exporter.evaluation import Evaluation
from exporter.index import Clock, FileMap, TargetIndex
from exporter.schedule import Schedule, resolve_zone
from exporter.sources.jobs import JobRecord
from exporter.sources.matcher import Matcher
from exporter.sources.permissions import Policy, policy_of
from exporter.timestamps import Stamper, make_stamper
from exporter.verify.drill import DrillRecord

# Clocks of the writer and this host may differ a little: that is not "in the future".
FUTURE_TOLERANCE = 60.0


@dataclass
class Target:
    """A configured target with its index: what the rest of the daemon reads."""

    config: TargetConfig
    clock: Clock = time.time
    index: TargetIndex = field(init=False)
    matcher: Matcher = field(init=False)
    stamp: Stamper = field(init=False)
    schedule: Schedule | None = field(init=False)
    zone: tzinfo = field(init=False)
    future_seen: int = field(init=False, default=0)  # logged once, not at every rescan
    mirror_source: Target | None = field(init=False, default=None)  # for mirror_of
    watch_mode: str | None = field(init=False, default=None)  # inotify, polling; None: unwatched
    policy: Policy | None = field(init=False, default=None)  # file_mode, dir_mode, owner...
    job: JobRecord | None = field(init=False, default=None)  # for job: (its runs)
    drill: DrillRecord | None = field(init=False, default=None)  # for drill: (its results)
    drill_schedule: Schedule | None = field(init=False, default=None)
    # The latest verdict on its checks, replaced whole by the evaluator (readers never compute).
    evaluation: Evaluation | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        cfg = self.config
        # A listed object is complete: only local files are ever seen half-written.
        settle = 0.0 if cfg.remote else cfg.settle
        self.index = TargetIndex(cfg.name, cfg.path, cfg.needs_history, self.clock, settle)
        self.matcher = Matcher(cfg.patterns, cfg.exclude)
        self.stamp = make_stamper(cfg.timestamp, cfg.name_format, cfg.timezone)
        self.zone = resolve_zone(cfg.timezone)
        self.policy = policy_of(cfg)
        self.schedule = Schedule(cfg.schedule, self.zone, cfg.grace) if cfg.schedule else None
        if cfg.drill is not None:
            self.drill_schedule = Schedule(cfg.drill.schedule, self.zone, cfg.drill.timeout)

    def local_time(self, ts: float, seconds: bool = False) -> str:
        """A moment as the people who set the target's schedule write it."""
        fmt = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
        return datetime.fromtimestamp(ts, self.zone).strftime(fmt)

    def split(self, raw: FileMap, now: float) -> tuple[FileMap, set[str], dict[str, float] | None]:
        """Scanned (size, mtime) -> (size, timestamp), the names that give none, and the
        mtimes of those modified within ``settle`` (None when timestamps are mtimes)."""
        if self.config.timestamp == "mtime":
            return raw, set(), None
        files: FileMap = {}
        unparsed: set[str] = set()
        recent: dict[str, float] = {}
        cutoff = now - self.index.settle
        for name, (size, mtime) in raw.items():
            ts = self.stamp(name, mtime)
            if ts is None:
                unparsed.add(name)
            else:
                files[name] = (size, ts)
                if mtime > cutoff:
                    recent[name] = mtime
        return files, unparsed, recent

    @property
    def name(self) -> str:
        return self.config.name


def link_mirrors(targets: Iterable[Target]) -> None:
    """Point each ``mirror_of`` target at the target it mirrors."""
    by_name = {t.name: t for t in targets}
    for target in by_name.values():
        source = target.config.mirror_of
        target.mirror_source = by_name.get(source) if source else None
