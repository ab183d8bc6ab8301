"""One procedure applies a listing to a target's index: local scans and object-storage
listings alike, with the same bookkeeping and the same log lines."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from exporter.index import Clock
from exporter.sources.listing import Listing, TargetUnavailable
from exporter.sources.permissions import sweep
from exporter.target import FUTURE_TOLERANCE, Target
from exporter.units import printable

log = logging.getLogger(__name__)


def apply_listing(
    target: Target, clock: Clock, list_files: Callable[[], Listing], keep_stale: bool = False
) -> None:
    """List the target with ``list_files`` and make its index equal to what it found.

    When listing fails the target is down: its backups are forgotten, or, with
    ``keep_stale`` (object storage, where a failed call says nothing of the bucket), kept
    and flagged stale.
    """
    index = target.index
    index.begin_scan()
    started = clock()
    was = index.snapshot()
    try:
        listing = list_files()
    except TargetUnavailable as exc:
        (index.mark_unreachable if keep_stale else index.mark_down)(str(exc), clock())
        if was.up or not was.scanned or was.error != str(exc):
            kept = " (keeping its last values)" if keep_stale else ""
            log.warning("target %s is down: %s: %s%s", target.name, target.config.path, exc, kept)
        return
    finished = clock()
    files, unparsed, recent = target.split(listing.files, finished)
    corrections = index.apply_scan(
        files,
        unparsed,
        finished,
        max(0.0, finished - started),
        {} if target.config.remote else recent,  # a listed object is complete
        listing.inodes,
        len(listing.unreadable),
    )
    if target.policy is not None:
        root = os.path.realpath(target.config.path)
        index.set_insecure(sweep(root, index.names(), target.policy))
    _report(target, was.unparsed, was.unreadable, unparsed, listing, finished)
    if was.scanned and not was.up:
        log.info("target %s is up again: %d backups", target.name, len(files))
    elif was.scanned and corrections:
        log.info("rescan of target %s corrected %d entries", target.name, corrections)


def _report(
    target: Target,
    known_unparsed: int,
    known_unreadable: int,
    unparsed: set[str],
    listing: Listing,
    finished: float,
) -> None:
    """Warn when names that count apart grow in number (once, not at every rescan)."""
    if len(listing.unreadable) > known_unreadable:
        log.warning(
            "target %s: %d entries cannot be read (path too long or no permission; e.g. %s)",
            target.name,
            len(listing.unreadable),
            printable(listing.unreadable[0]),
        )
    if len(unparsed) > known_unparsed:
        log.warning(
            "target %s: %d file names do not match name_format %r (e.g. %s); counted apart",
            target.name,
            len(unparsed),
            target.config.name_format,
            printable(sorted(unparsed)[0]),
        )
    future = target.index.count_after(finished + FUTURE_TOLERANCE)
    if future > target.future_seen:
        log.warning(
            "target %s: %d backups are dated in the future (clock or name wrong?)",
            target.name,
            future,
        )
    target.future_seen = future
