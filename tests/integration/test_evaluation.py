"""One verdict per change: the table of checks, evaluations computed once and read by
every reader, a broken check that fails nothing else, one document for API and CLI."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from exporter.checks import table as checks
from exporter.evaluation import INTERNAL_ERROR
from tests.conftest import fetch, make_config, scrape, value, wait_for, write_backup
from tests.helpers import ROOT, run_cli

SCHEMA = json.loads((ROOT / "docs" / "targets.schema.json").read_text())


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


@pytest.mark.parametrize("command", ["check", "status", "verify", "health", "rules"])
def test_every_command_documents_its_options(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "--help" in result.stdout
