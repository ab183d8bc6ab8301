"""One verdict per change: the table of checks, evaluations computed once and read by
every reader, a broken check that fails nothing else, one document for API and CLI."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import checks
from alerts.messages import SUMMARIES
from exporter.config import TargetConfig
from exporter.evaluation import INTERNAL_ERROR
from exporter.schedule import Schedule, resolve_zone
from exporter.supervisor import Target
from tests.conftest import fetch, make_config, scrape, value, wait_for, write_backup
from tests.test_config import run_cli

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "alerts" / "prometheus" / "backup-monitor.rules.yml"
SCHEMA = json.loads((ROOT / "docs" / "targets.schema.json").read_text())


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
        assert url.endswith("/docs/runbook.md#" + spec.runbook), url
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


def test_readers_never_evaluate(tmp_path: Path, start_daemon, monkeypatch) -> None:
    calls: list[str] = []

    def counting(spec: checks.CheckSpec) -> checks.CheckSpec:
        def function(*args: object) -> object:
            calls.append(spec.name)
            return spec.function(*args)

        return replace(spec, function=function)

    monkeypatch.setattr(checks, "CHECKS", tuple(counting(s) for s in checks.CHECKS))
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    daemon = start_daemon(make_config(targets=[{"name": "a", "path": str(tmp_path / "a")}]))
    assert value(scrape(daemon.url), "backup_check_ok", target="a", check="age") == 1
    evaluator = daemon.alerting.evaluator
    rounds = evaluator.rounds
    evaluator.wake()
    wait_for(lambda: evaluator.rounds > rounds)
    before = len(calls)
    for _ in range(20):
        scrape(daemon.url)
        fetch(daemon.url.replace("/metrics", "/api/v1/targets"))
    evaluator.wake()
    wait_for(lambda: evaluator.rounds > rounds + 1)
    assert len(calls) == before  # scrapes, API reads and a round with no change: no check ran


def test_a_broken_check_fails_nothing_else(
    tmp_path: Path, start_daemon, monkeypatch, caplog
) -> None:
    def broken(*_args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(
        checks,
        "CHECKS",
        tuple(replace(s, function=broken) if s.name == "size" else s for s in checks.CHECKS),
    )
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    with caplog.at_level(logging.ERROR):
        daemon = start_daemon(make_config(targets=[{"name": "a", "path": str(tmp_path / "a")}]))
        write_backup(tmp_path / "a" / "backup-2.db", 4096)  # a second evaluation
        wait_for(lambda: daemon.targets[0].index.snapshot().count == 2)
        evaluator = daemon.alerting.evaluator
        wait_for(lambda: evaluator.check_errors.get(("a", "size"), 0) >= 2)
    s = scrape(daemon.url)
    assert value(s, "backup_check_ok", target="a", check="size") == 0
    assert value(s, "backup_check_ok", target="a", check="age") == 1
    assert value(s, "backup_monitor_check_errors_total", target="a", check="size") >= 2
    assert caplog.text.count("check size of target a failed") == 1  # logged once
    document = json.loads(fetch(daemon.url.replace("/metrics", "/api/v1/targets")))
    reasons = {c["name"]: c["reason"] for c in document["targets"][0]["checks"]}
    assert reasons["size"] == INTERNAL_ERROR


def test_api_status_and_check_print_one_schema(tmp_path: Path, start_daemon) -> None:
    write_backup(tmp_path / "a" / "backup-1.db", 4096)
    write_backup(tmp_path / "b" / "backup-1.db", 10)
    targets = [{"path": str(tmp_path / "a")}, {"path": str(tmp_path / "b")}]
    targets.append({"path": str(tmp_path / "missing")})
    daemon = start_daemon(make_config(targets=targets))
    base = daemon.url.removesuffix("/metrics")
    api = json.loads(fetch(base + "/api/v1/targets"))
    status = run_cli("status", "--url", base, "--format", "json")
    check = run_cli("check", *[a for t in targets for a in ("-t", t["path"])], "--format", "json")
    documents = [api, json.loads(status.stdout), json.loads(check.stdout)]
    for document in documents:
        jsonschema.validate(document, SCHEMA)
    assert [d["state"] for d in documents] == ["down"] * 3
    assert status.returncode == check.returncode == 3  # one exit contract: down
    shapes = [
        {t["name"]: [c["name"] for c in t["checks"]] for t in d["targets"]} for d in documents
    ]
    assert shapes[0] == shapes[1]
    assert shapes[2]["b"] == shapes[0]["b"]


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


@pytest.mark.parametrize("command", ["check", "status", "verify", "health", "rules"])
def test_every_command_documents_its_options(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "--help" in result.stdout
