"""What a notification says: a Notification and its rendering from the templates."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from exporter.checks.table import SUMMARIES
from exporter.config import NotifyConfig, TargetConfig
from exporter.index import TargetSnapshot
from exporter.units import format_duration, humanize_age, humanize_size

FIRING, RESOLVED, TEST = "FIRING", "RESOLVED", "TEST"


@dataclass(frozen=True)
class Notification:
    """One message to deliver; ``tags`` select the URLs (empty: all of them)."""

    status: str
    target: str
    check: str
    title: str
    body: str
    tags: tuple[str, ...] = ()
    created_at: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tags": list(self.tags)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        return cls(**{**data, "tags": tuple(data.get("tags", ()))})


def _stamp(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(moment))


def render(
    notify: NotifyConfig,
    target: TargetConfig,
    snap: TargetSnapshot,
    check: str,
    status: str,
    reason: str,
    since: float,
    now: float,
    detail: str = "",
) -> Notification:
    """``detail``: more than the reason (a failed job's output), shown below it."""
    newest = snap.newest
    complete = snap.settled_newest(now)  # sizes are judged on complete backups only
    fields = {
        "status": status,
        "summary": SUMMARIES.get(check, check),
        "target": target.name,
        "check": check,
        "reason": reason,
        # Empty, or the detail between blank lines: the default body reads well either way.
        "details": f"\n{detail}\n" if detail else "",
        "host": socket.gethostname(),
        "path": target.path,
        "newest": newest.name if newest else "none",
        "age": humanize_age(now - newest.mtime) if newest else "never",
        "max_age": (
            format_duration(target.effective_max_age)
            if target.effective_max_age is not None
            else f"schedule {target.schedule}"
        ),
        "size": humanize_size(complete.size) if complete else "none",
        "min_size": humanize_size(target.min_size),
        "count": str(snap.count),
        "since": _stamp(since),
        "time": _stamp(now),
    }
    return Notification(
        status=status,
        target=target.name,
        check=check,
        title=notify.title_template.format(**fields),
        body=notify.body_template.format(**fields),
        tags=tuple(target.notify_tags),
        created_at=now,
    )
