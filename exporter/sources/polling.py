"""Polling for targets where inotify cannot see every writer (network and FUSE filesystems).

Cheap by design: each round lists the names (no stat), stats the names that
appeared, re-stats the few that can be changing (backups still being written, the
newest ones) and one slice in SPREAD of the others, so a change anywhere (an old
backup touched or rewritten) is seen within SPREAD rounds without statting every
file every round.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from typing import TYPE_CHECKING

from exporter.loop import Loop
from exporter.sources.listing import TargetUnavailable, list_names

if TYPE_CHECKING:
    from exporter.sources.watch import TargetEventHandler

log = logging.getLogger(__name__)

SPREAD = 30  # every file re-statted within 30 rounds (2.5 min at the 5 s default)


def _slice(names: set[str], turn: int) -> set[str]:
    """The names whose turn it is: a name's CRC, so its turn is the same in every run
    (str hashes are salted per process, which made the slices' sizes vary from run to run)."""
    return {n for n in names if zlib.crc32(n.encode("utf-8", "surrogateescape")) % SPREAD == turn}


def poll_once(handler: TargetEventHandler, turn: int = 0) -> None:
    """One round for one target: new names, gone names, the names that may be changing,
    and the slice of the others whose ``turn`` it is."""
    index, root = handler.index, handler.root
    try:
        listed = set(list_names(root, handler.matcher, handler.recursive))
    except TargetUnavailable:
        handler.request_rescan(index.name, rewatch=True)  # the scan says why and marks it down
        return
    known = index.names()
    for rel in known - listed:
        handler.forget(os.path.join(root, rel))
    for rel in (listed - known) | (index.changing() & listed) | _slice(listed, turn % SPREAD):
        handler.refresh(os.path.join(root, rel))


class DirectoryPoller(Loop):
    """One thread polling every polled target each ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        super().__init__("poller", interval)
        self._lock = threading.Lock()
        self._handlers: dict[str, TargetEventHandler] = {}
        self._turn = 0
        self.start(first_round_now=False)

    def watch(self, handler: TargetEventHandler) -> None:
        with self._lock:
            self._handlers[handler.index.name] = handler

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._handlers.pop(name, None)

    def watched_root(self, name: str) -> str | None:
        with self._lock:
            handler = self._handlers.get(name)
            return handler.root if handler else None

    def round(self) -> None:
        self._turn += 1
        with self._lock:
            handlers = list(self._handlers.values())
        for handler in handlers:
            try:
                poll_once(handler, self._turn)
            except Exception:  # one target's bad round must not stop the others
                log.exception("polling target %s failed; rescanning", handler.index.name)
                handler.request_rescan(handler.index.name)
