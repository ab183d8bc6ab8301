"""The alert state machine, driven by explicit times (no sleeping)."""

from __future__ import annotations

from exporter.alerting.messages import FIRING, RESOLVED
from exporter.alerting.state import AlertState


def statuses(notices) -> list[str]:
    return [n.status + (" repeat" if n.repeat else "") for n in notices]


def test_fire_repeat_resolve() -> None:
    state = AlertState(for_=0, repeat_interval=100, min_interval=10, send_resolved=True)
    assert statuses(state.update("t", "age", True, "old", 0)) == [FIRING]
    assert state.is_firing("t", "age")
    assert state.update("t", "age", True, "old", 50) == []
    assert state.next_wake() == 100
    assert statuses(state.update("t", "age", True, "old", 100)) == ["FIRING repeat"]
    assert statuses(state.update("t", "age", False, "fresh", 120)) == [RESOLVED]
    assert state.update("t", "age", False, "fresh", 130) == []
    assert state.next_wake() is None


def test_for_delays_firing() -> None:
    state = AlertState(for_=30, repeat_interval=1000, min_interval=0, send_resolved=True)
    assert state.update("t", "size", True, "small", 0) == []
    assert state.next_wake() == 30
    assert state.update("t", "size", True, "small", 29) == []
    assert statuses(state.update("t", "size", True, "small", 30)) == [FIRING]
    # Clearing while pending says nothing at all.
    state.update("t", "size", False, "ok", 40)
    assert state.update("t", "size", True, "small", 50) == []
    assert state.update("t", "size", False, "ok", 60) == []


def test_flapping_is_held_then_dropped_or_sent() -> None:
    state = AlertState(for_=0, repeat_interval=1000, min_interval=60, send_resolved=True)
    assert statuses(state.update("t", "age", True, "x", 0)) == [FIRING]
    assert statuses(state.update("t", "age", False, "ok", 5)) == [RESOLVED]  # at once
    assert state.update("t", "age", True, "x", 10) == []  # held: fired 10 s ago
    assert state.next_wake() == 60
    assert state.update("t", "age", False, "ok", 20) == []  # cleared: dropped, no resolve
    assert state.update("t", "age", True, "x", 30) == []  # held again
    assert statuses(state.update("t", "age", True, "x", 60)) == [FIRING]  # held long enough


def test_no_resolved_when_disabled() -> None:
    state = AlertState(for_=0, repeat_interval=1000, min_interval=0, send_resolved=False)
    state.update("t", "age", True, "x", 0)
    assert state.update("t", "age", False, "ok", 1) == []


def test_round_trip_through_json() -> None:
    state = AlertState(for_=0, repeat_interval=100, min_interval=10, send_resolved=True)
    state.update("t", "age", True, "old", 0)
    restored = AlertState(for_=0, repeat_interval=100, min_interval=10, send_resolved=True)
    restored.load_json(state.to_json())
    assert restored.update("t", "age", True, "old", 50) == []  # already notified
    assert statuses(restored.update("t", "age", False, "ok", 60)) == [RESOLVED]
    restored.retain(set())
    assert restored.to_json() == {}
