"""Free space of the targets' filesystems, sampled on a timer and after changes.

One ``statvfs`` per filesystem and round, shared by every target on it (targets are
grouped by device), at most every ``INTERVAL`` and, woken by a change, at most every
``MIN_GAP``: hundreds of targets on one disk cost one call. The sample goes into each
target's index (``Space``), where the ``capacity`` check and the metrics read it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from exporter.index import Space
from exporter.loop import Loop
from exporter.target import Target

log = logging.getLogger(__name__)

INTERVAL = 5.0
MIN_GAP = 1.0


def sample(targets: Sequence[Target]) -> None:
    """Sample every local target's filesystem once (targets down are left as they are)."""
    by_device: dict[int, list[Target]] = {}
    for target in targets:
        if target.config.remote:
            continue
        try:
            device = os.stat(target.config.path).st_dev
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
            target.index.set_space(space)


class SpaceSampler(Loop):
    def __init__(self, targets: Callable[[], Sequence[Target]]) -> None:
        super().__init__("capacity", INTERVAL, min_gap=MIN_GAP)
        self.targets = targets

    def round(self) -> None:
        sample(self.targets())
