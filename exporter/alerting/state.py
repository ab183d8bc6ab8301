"""The alert state machine: check results in, notices (firing, repeat, resolved) out.

Per (target, check): ``ok`` -> ``pending`` (while ``for`` runs) -> ``firing`` -> ``ok``.
- A firing alert is announced once, then again every ``repeat_interval``.
- Its resolution is announced at once (``send_resolved``).
- Against flapping: an alert that fires again within ``min_interval`` of its previous
  firing notice is held until ``min_interval`` has passed, and dropped, with its
  resolution, if it clears meanwhile.
It knows nothing of delivery; its records are plain data, persisted by the caller.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, astuple, dataclass
from typing import Any

from exporter.alerting.messages import FIRING, RESOLVED


@dataclass
class AlertRecord:
    status: str = "ok"  # ok | pending | firing
    since: float = 0.0  # when the condition started failing
    notified: bool = False  # this episode's firing notice has been issued
    last_fire_notice: float | None = None  # the latest firing notice, any episode
    last_notice: float = 0.0  # the latest firing or repeat notice of this episode
    reason: str = ""


@dataclass(frozen=True)
class Notice:
    target: str
    check: str
    status: str  # FIRING or RESOLVED
    reason: str
    since: float
    repeat: bool = False


class AlertState:
    def __init__(
        self, for_: float, repeat_interval: float, min_interval: float, send_resolved: bool
    ) -> None:
        self.for_ = for_
        self.repeat_interval = repeat_interval
        self.min_interval = min_interval
        self.send_resolved = send_resolved
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], AlertRecord] = {}
        self._dirty = False

    def update(
        self, target: str, check: str, failing: bool, reason: str, now: float
    ) -> list[Notice]:
        with self._lock:
            rec = self._records.setdefault((target, check), AlertRecord())
            before = astuple(rec)
            if failing:
                notices = self._failing(rec, target, check, reason, now)
            else:
                notices = []
                if rec.status == "firing" and rec.notified and self.send_resolved:
                    notices.append(Notice(target, check, RESOLVED, reason, rec.since))
                rec.status, rec.notified = "ok", False
            self._dirty |= astuple(rec) != before
            return notices

    def take_dirty(self) -> bool:
        """Whether any record changed since the last call (the state file needs saving)."""
        with self._lock:
            dirty, self._dirty = self._dirty, False
            return dirty

    def _failing(
        self, rec: AlertRecord, target: str, check: str, reason: str, now: float
    ) -> list[Notice]:
        if rec.status == "ok":
            rec.status, rec.since, rec.notified = "pending", now, False
        rec.reason = reason
        if rec.status == "pending" and now - rec.since >= self.for_:
            rec.status = "firing"
        if rec.status != "firing":
            return []
        if not rec.notified:
            if rec.last_fire_notice is not None and now - rec.last_fire_notice < self.min_interval:
                return []  # held: it fired too recently
            rec.notified = True
            rec.last_fire_notice = rec.last_notice = now
            return [Notice(target, check, FIRING, reason, rec.since)]
        if now - rec.last_notice >= self.repeat_interval:
            rec.last_fire_notice = rec.last_notice = now
            return [Notice(target, check, FIRING, reason, rec.since, repeat=True)]
        return []

    def next_wake(self) -> float | None:
        """The earliest moment a record can change with no new check result."""
        moments = []
        with self._lock:
            for rec in self._records.values():
                if rec.status == "pending":
                    moments.append(rec.since + self.for_)
                elif rec.status == "firing" and not rec.notified:
                    moments.append((rec.last_fire_notice or 0.0) + self.min_interval)
                elif rec.status == "firing":
                    moments.append(rec.last_notice + self.repeat_interval)
        return min(moments, default=None)

    def statuses(self) -> dict[str, list[tuple[str, bool]]]:
        """target -> [(check, firing)] for every check the state machine has seen."""
        grouped: dict[str, list[tuple[str, bool]]] = {}
        with self._lock:
            for (target, check), rec in self._records.items():
                grouped.setdefault(target, []).append((check, rec.status == "firing"))
        return grouped

    def is_firing(self, target: str, check: str) -> bool:
        with self._lock:
            rec = self._records.get((target, check))
            return rec is not None and rec.status == "firing"

    def firing_since(self, target: str, check: str) -> tuple[float, bool] | None:
        """(since, notified) while the alert fires, else None."""
        with self._lock:
            rec = self._records.get((target, check))
            return (rec.since, rec.notified) if rec is not None and rec.status == "firing" else None

    def firing(self) -> list[tuple[str, str, AlertRecord]]:
        with self._lock:
            return [
                (t, c, AlertRecord(**asdict(r)))
                for (t, c), r in sorted(self._records.items())
                if r.status == "firing"
            ]

    def retain(self, keep: set[tuple[str, str]]) -> None:
        """Forget the records of targets or checks that are no longer configured."""
        with self._lock:
            for key in [k for k in self._records if k not in keep]:
                del self._records[key]
                self._dirty = True

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {f"{t}/{c}": asdict(r) for (t, c), r in self._records.items()}

    def load_json(self, data: dict[str, Any]) -> None:
        with self._lock:
            for key, fields in data.items():
                target, _, check = key.rpartition("/")
                self._records[(target, check)] = AlertRecord(**fields)
