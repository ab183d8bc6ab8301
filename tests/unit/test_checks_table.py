"""One verdict per change: the table of checks, evaluations computed once and read by
every reader, a broken check that fails nothing else, one document for API and CLI."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.alerting.messages import SUMMARIES
from exporter.checks import table as checks
from exporter.config import TargetConfig
from exporter.schedule import Schedule, resolve_zone
from exporter.target import Target
from tests.helpers import ROOT

RULES = ROOT / "alerts" / "prometheus" / "backup-monitor.rules.yml"


def test_every_check_has_its_rule_runbook_and_summary() -> None:
    rules = {
        r["alert"]: r
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for r in group["rules"]
        if "alert" in r
    }
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    documented = (ROOT / "README.md").read_text() + (ROOT / "docs" / "alerting.md").read_text()
    assert len({spec.name for spec in checks.CHECKS}) == len(checks.CHECKS)
    for spec in checks.CHECKS:
        assert spec.alert in rules, spec.name
        url = rules[spec.alert]["annotations"]["runbook_url"]
        assert url == spec.runbook_url, url
        assert rules[spec.alert]["labels"]["severity"] == spec.severity, spec.name
        assert f"\n## {spec.alert}\n" in runbook, spec.alert
        assert SUMMARIES[spec.name] == spec.summary
        assert f"`{spec.name}`" in documented, spec.name  # documented in a checks table
    for rule in rules.values():  # every alert, checks' or not, has its runbook entry
        anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
        assert anchor in {h.lower() for h in re.findall(r"(?m)^## (\w+)$", runbook)}, anchor


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_evaluation_is_computed_again_only_when_due() -> None:
    clock = Clock(1_780_000_000.0)
    config = TargetConfig.model_validate(
        {"name": "t", "path": "/b", "max_age": "1h", "settle": "0s"}
    )
    target = Target(config, clock)
    target.index.apply_scan({"b1": (5000, clock.now - 600)}, set(), clock.now, 0.0)
    first = checks.evaluate_target(target, clock.now)
    assert first.results["age"].ok
    assert first.next_change_at == clock.now - 600 + 3600
    clock.now += 30
    assert checks.evaluate_target(target, clock.now) is first  # nothing changed
    target.index.upsert("b2", 6000, clock.now)
    second = checks.evaluate_target(target, clock.now)
    assert second is not first  # the snapshot moved
    assert checks.evaluate_target(target, clock.now + 1) is second
    late = second.next_change_at + 0.01  # the new newest crosses max_age
    third = checks.evaluate_target(target, late)
    assert third is not second
    assert not third.results["age"].ok


@settings(max_examples=60, deadline=None)
@given(
    windows=st.lists(
        st.tuples(st.floats(0, 120 * 86400), st.floats(0, 45 * 86400)), min_size=1, max_size=8
    ),
    expression=st.sampled_from(["0 2 * * *", "*/30 * * * *", "0 3 * * 1", "15 1 1 * *"]),
)
def test_cached_runs_equal_a_fresh_walk(
    windows: list[tuple[float, float]], expression: str
) -> None:
    """However the windows move, the cached run times are croniter's."""
    zone = resolve_zone("Europe/Berlin")
    cached = Schedule(expression, zone, 3600)
    base = 1_780_000_000.0
    for offset, length in windows:
        start = base - offset
        fresh = Schedule(expression, zone, 3600)
        assert cached.runs_between(start, start + length) == fresh.runs_between(
            start, start + length
        )


def test_exit_codes_are_defined_once() -> None:
    source = "\n".join(
        p.read_text() for p in (ROOT / "exporter").glob("*.py") if p.name != "exitcodes.py"
    )
    assert not re.search(r"sys\.exit\((?:0|1|2|3|4)\b", source)
    assert not re.search(r"_fail\([^)]*, (?:0|1|2|3|4)\)", source)


@pytest.mark.parametrize(
    ("options", "checks_using_history"),
    [
        ({"max_shrink": None}, set()),
        ({"max_shrink": None, "schedule": "0 2 * * *"}, {"gaps"}),
        ({}, {"shrink"}),
        ({"max_shrink": None, "max_growth": "50%"}, {"growth"}),
        ({"max_shrink": None, "retention": "30d"}, {"retention"}),
        ({"max_shrink": None, "size_history": 0, "max_growth": "50%"}, set()),
    ],
)
def test_a_target_keeps_its_history_exactly_when_a_check_needs_it(
    options: dict, checks_using_history: set[str]
) -> None:
    """TargetConfig.needs_history agrees with the table's needs_history flags: the history
    is kept when, and only when, an applicable check is marked as needing it."""
    config = TargetConfig.model_validate({"name": "t", "path": "/b", "settle": 0, **options})
    target = Target(config, lambda: 1_780_000_000.0)
    target.index.apply_scan({"b1": (5000, 1_779_990_000.0)}, set(), 1_780_000_000.0, 0.0)
    applicable = checks.evaluate(target.index.snapshot(), target, 1_780_000_000.0)
    marked = {s.name for s in checks.CHECKS if s.needs_history and s.name in applicable}
    assert marked == checks_using_history
    assert config.needs_history == bool(marked)
