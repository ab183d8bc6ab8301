"""Free space of the targets' filesystems, sampled on a timer and after changes.

One ``statvfs`` per filesystem and round, shared by every target on it (targets are
grouped by device), at most every ``INTERVAL`` and, woken by a change, at most every
``MIN_GAP``: hundreds of targets on one disk cost one call. The sample goes into each
target's index (``Space``), where the ``capacity`` check and the metrics read it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from exporter.index import Space
from exporter.loop import Loop
from exporter.target import Target

log = logging.getLogger(__name__)

INTERVAL = 5.0
MIN_GAP = 1.0
DEVICES_KEPT = 60.0  # a target mounted over or moved is grouped right within this


def sample(targets: Sequence[Target], devices: dict[str, int] | None = None) -> None:
    """Sample every local target's filesystem once (targets down are left as they are).

    ``devices``: the device of each path as last seen, so a round costs one ``statvfs``
    per filesystem and no ``stat`` per target (the sampler refreshes it every minute).
    """
    devices = {} if devices is None else devices
    by_device: dict[int, list[Target]] = {}
    for target in targets:
        if target.config.remote:
            continue
        device = devices.get(target.config.path)
        if device is None:
            try:
                device = devices[target.config.path] = os.stat(target.config.path).st_dev
            except (OSError, ValueError):
                continue
        by_device.setdefault(device, []).append(target)
    for group in by_device.values():
        try:
            st = os.statvfs(group[0].config.path)
        except (OSError, ValueError):
            continue
        # f_bavail: what a writer without root's reserve can still use.
        space = Space(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
        for target in group:
            target.index.set_space(space, limits(target))


def limits(target: Target) -> tuple[float, ...]:
    """The free space at which the target's capacity check changes its verdict (the
    expected size taken as the newest backup's: close enough to place the boundary)."""
    cfg = target.config
    found: list[float] = []
    if cfg.min_free is not None:
        found.append(cfg.min_free)
    newest = target.index.snapshot().newest
    if cfg.min_free_runs is not None and newest is not None:
        found.append(cfg.min_free_runs * newest.size)
    return tuple(found)


class SpaceSampler(Loop):
    def __init__(self, targets: Callable[[], Sequence[Target]]) -> None:
        super().__init__("capacity", INTERVAL, min_gap=MIN_GAP)
        self.targets = targets
        self._devices: dict[str, int] = {}
        self._devices_at = 0.0

    def round(self) -> None:
        if time.monotonic() - self._devices_at > DEVICES_KEPT:
            self._devices, self._devices_at = {}, time.monotonic()
        sample(self.targets(), self._devices)
