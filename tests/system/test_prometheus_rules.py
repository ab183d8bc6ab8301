"""The bundled Prometheus rules, Alertmanager example and Grafana dashboard, proven with
promtool, amtool and a real Prometheus scraping the real exporter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from exporter.commands.bundle import dashboard_text, namespaced, rules_text
from exporter.config import Config
from exporter.verify.drill import DrillResult, TableCount
from tests.conftest import fetch, make_config, parse_samples, require_tool, wait_for, write_backup
from tests.helpers import ROOT, make_db, query
from tests.peers import free_port

RULES_DIR = ROOT / "alerts" / "prometheus"
RULES = RULES_DIR / "backup-monitor.rules.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "backup-monitor.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_checks_and_unit_tests_pass() -> None:
    promtool = require_tool("promtool", "prometheus")
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(
        promtool, "test", "rules", str(RULES_DIR / "tests" / "backup-monitor.rules.test.yml")
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    config = run(promtool, "check", "config", str(RULES_DIR / "prometheus.example.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_alertmanager_example_is_accepted() -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    result = run(amtool, "check-config", str(RULES_DIR / "alertmanager.example.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- the dashboard's structure ------------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_dashboard_structure() -> None:
    dash = dashboard()
    assert dash["uid"] == "backup-monitor"
    assert isinstance(dash["schemaVersion"], int)
    assert "__inputs" not in dash
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("instance", "target"):
        assert variables[name]["multi"]
        assert variables[name]["includeAll"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            # Multi-value variables expand to regexes: they must be matched with =~.
            assert not re.search(r'[^~]="\$(instance|target)', target["expr"]), target["expr"]
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]


def test_dashboard_and_rules_use_only_exported_metrics(tmp_path: Path, start_daemon) -> None:
    write_backup(tmp_path / "a" / "backup-1.db", 4096, time.time() - 86400)
    write_backup(tmp_path / "a" / "backup-2.db", 4096)
    daemon = start_daemon(
        make_config(
            targets=[
                {
                    "path": str(tmp_path / "a"),
                    "min_count": 1,
                    "max_count": 9,
                    "file_mode": "0600",
                    "verify": "auto",
                    "settle": 0,
                },
                {
                    "path": str(tmp_path / "a"),
                    "name": "b",
                    "schedule": "0 2 * * *",
                    "retention": "30d",
                    "mirror_of": "a",
                    "job": {},
                    "drill": {},
                },
            ],
            notify={"urls": ["json://127.0.0.1:9/x"]},
        )
    )
    daemon.targets[1].job.start()  # a run with a known start: every job series exists
    daemon.targets[1].job.finish(0)
    daemon.targets[1].drill.add_round([passed_drill()])
    wait_for(lambda: "backup_verify_ok{" in fetch(daemon.url))
    exported = {name for name, _ in parse_samples(fetch(daemon.url))}
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    text = " ".join(panel_exprs() + [r["expr"] + str(r["annotations"]) for r in rules])
    used = set(re.findall(r"\bbackup_[a-z_]+", text))
    assert len(used) > 10
    assert used <= exported, sorted(used - exported)


# --- a real Prometheus ------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path):
    binary = require_tool("prometheus", "prometheus")
    procs: list[subprocess.Popen] = []

    def start(exporter_port: int, rules_text: str | None = None) -> str:
        rules = tmp_path / "rules.yml"
        # Shorten every `for:` for the test only; the shipped file is untouched.
        rules.write_text(re.sub(r"for: \d+[smh]", "for: 0s", rules_text or RULES.read_text()))
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [{rules}]
scrape_configs:
  - job_name: backup-monitor
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
"""
        )
        log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return "Ready" in fetch(url + "/-/ready")
            except OSError:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
                return False

        wait_for(ready, timeout=30)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_real_prometheus_rules_and_dashboard(tmp_path: Path, start_daemon, prometheus) -> None:
    now = time.time()
    write_backup(tmp_path / "healthy" / "backup-1.db", 40960, now - 3600)
    write_backup(tmp_path / "old" / "backup-1.db", 40960, now - 2 * 86400)
    write_backup(tmp_path / "tiny" / "backup-1.db", 12, now - 60)
    write_backup(tmp_path / "few" / "backup-1.db", 40960, now - 60)
    (tmp_path / "empty").mkdir()
    targets = [{"path": str(tmp_path / n)} for n in ("healthy", "old", "tiny", "empty", "missing")]
    targets.append({"path": str(tmp_path / "few"), "min_count": 3})
    # Nightly with 30-day retention: late (the last backup is two days old), a night
    # missing inside the series, the newest shrunk, and one backup past retention.
    for day, size in ((2, 4000), (3, 40960), (5, 40960), (40, 40960)):
        write_backup(tmp_path / "late" / f"backup-{day}.db", size, now - day * 86400)
    targets.append(
        {
            "path": str(tmp_path / "late"),
            "schedule": "0 2 * * *",
            "timezone": "UTC",
            "retention": "30d",
            "gap_window": "7d",
        }
    )
    write_backup(tmp_path / "corrupt" / "backup-1.db", 40960, now - 60)  # not SQLite inside
    targets.append({"path": str(tmp_path / "corrupt"), "verify": "auto"})
    # Backup jobs: one that failed, one that reported success and wrote nothing.
    write_backup(tmp_path / "jobs" / "backup-1.db", 40960, now - 3600)
    for name in ("jobfail", "jobsilent"):
        targets.append(
            {"name": name, "path": str(tmp_path / "jobs"), "job": {"output_grace": "1s"}}
        )
    # The guide's practices: a disk without room, a world-readable backup, a plaintext
    # backup where encryption is required.
    write_backup(tmp_path / "open" / "backup-1.db", 40960, now - 60).chmod(0o644)
    targets.append({"path": str(tmp_path / "open"), "file_mode": "0600"})
    targets.append({"name": "full", "path": str(tmp_path / "healthy"), "min_free": "1000TiB"})
    targets.append({"name": "plain", "path": str(tmp_path / "healthy"), "encryption": "required"})
    # Restore drills: one passed, one restored far fewer rows than live.
    for name in ("drilled", "drillshort"):
        targets.append({"name": name, "path": str(tmp_path / "jobs"), "drill": {}})
    daemon = start_daemon(make_config(targets=targets))
    daemon.targets[-2].drill.add_round([passed_drill()])
    short = DrillResult("backup-1.db", now, False, "api_keys: 1 rows restored, 90 live", now, 1.5)
    daemon.targets[-1].drill.add_round([short])
    pings = f"http://127.0.0.1:{daemon.http.port}/ping"
    for path in ("jobfail/start", "jobfail/2", "jobsilent/start", "jobsilent"):
        fetch(f"{pings}/{path}")
    url = prometheus(daemon.http.port)
    instance = f"127.0.0.1:{daemon.http.port}"

    wait_for(lambda: query(url, 'up{job="backup-monitor"} == 1'), timeout=30)

    expected = {
        ("BackupTooOld", "old"),
        ("BackupTooSmall", "tiny"),
        ("BackupMissing", "empty"),
        ("BackupTargetDown", "missing"),
        ("BackupCountLow", "few"),
        ("BackupLate", "late"),
        ("BackupRunsMissing", "late"),
        ("BackupShrunk", "late"),
        ("BackupRetentionViolated", "late"),
        ("BackupVerifyFailed", "corrupt"),
        ("BackupJobFailed", "jobfail"),
        ("BackupJobNoOutput", "jobsilent"),
        ("BackupDrillFailed", "drillshort"),
        ("BackupPermissionsOpen", "open"),
        ("BackupCapacityLow", "full"),
        ("BackupNotEncrypted", "plain"),
    }

    wait_for(lambda: firing_alerts(url) == expected, timeout=30)

    for expr in panel_queries(panel_exprs(), instance):
        wait_for(lambda expr=expr: query(url, expr), timeout=30)
    assert firing_alerts(url) == expected  # and nothing else started firing meanwhile


def passed_drill() -> DrillResult:
    tables = (TableCount("api_keys", 90, 90),)
    return DrillResult("backup-1.db", time.time(), True, "restored", time.time(), 2.0, {}, tables)


def panel_queries(templates: list[str], instance: str) -> list[str]:
    """The dashboard's queries with its variables filled in."""
    substitutions = {"$instance": instance, "$target": ".*", "$__rate_interval": "15s"}
    queries = []
    for template in templates:
        expr = template
        for name, val in substitutions.items():
            expr = expr.replace(name, val)
        queries.append(expr)
    return queries


def firing_alerts(url: str) -> set[tuple[str, str]]:
    alerts = json.loads(fetch(url + "/api/v1/alerts"))["data"]["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("target", ""))
        for a in alerts
        if a["state"] == "firing"
    }


def test_quota_proxy_example_with_rendered_rules_and_dashboard(
    tmp_path: Path, start_daemon, prometheus
) -> None:
    """The documented quota-proxy configuration keeps the guide's metric names; the rules
    and the dashboard rendered for its namespace fire and show data."""
    example = yaml.safe_load((ROOT / "examples" / "quota-proxy.yml").read_text())
    backups = tmp_path / "backups"
    backups.mkdir()
    now = time.time()
    for day in (2, 3, 4):  # nightly, but nothing for the last two days
        stamp = now - day * 86400
        db = make_db(backups / time.strftime("backup-%Y-%m-%d-%H-%M-%S.db", time.localtime(stamp)))
        os.utime(db, (stamp, stamp))
    example["targets"][0]["path"] = str(backups)
    example.update(listen="127.0.0.1:0", state_dir=str(tmp_path / "state"))
    config = Config.model_validate(example)
    assert config.namespace == "quota_proxy_backup"
    daemon = start_daemon(config)
    wait_for(lambda: "quota_proxy_backup_verify_ok{" in fetch(daemon.url))
    exported = {name for name, _ in parse_samples(fetch(daemon.url))}
    url = prometheus(daemon.http.port, namespaced(rules_text(), config.namespace))
    wait_for(lambda: query(url, 'up{job="backup-monitor"} == 1'), timeout=30)
    wait_for(lambda: ("BackupTooOld", "quota-proxy") in firing_alerts(url), timeout=30)
    dashboard = json.loads(namespaced(dashboard_text(), config.namespace))
    templates = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert not any(re.search(r"\bbackup_(?!monitor_)", t) for t in templates)
    answered = 0
    for expr in panel_queries(templates, f"127.0.0.1:{daemon.http.port}"):
        used = set(re.findall(r"\b(?:quota_proxy_backup|backup_monitor)_[a-z_]+", expr))
        if used <= exported:  # what this configuration publishes must show
            wait_for(lambda expr=expr: query(url, expr), timeout=30)
            answered += 1
    assert answered >= 15, answered
