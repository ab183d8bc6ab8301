"""The status page in a real headless Chromium, the JSON API, and `backup-monitor status`."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from exporter.verify.drill import DrillResult
from tests.conftest import fetch, make_config, scrape, value, wait_for, write_backup
from tests.helpers import ROOT, run_cli

ARTIFACTS = ROOT / "test-artifacts"


def three_targets(tmp_path: Path) -> list[dict]:
    write_backup(tmp_path / "healthy" / "backup-1.db", 4096, time.time() - 600)
    write_backup(tmp_path / "stale" / "backup-1.db", 4096, time.time() - 3 * 86400)
    return [
        {"path": str(tmp_path / "healthy")},
        {"path": str(tmp_path / "stale")},
        {"path": str(tmp_path / "missing")},
    ]


def test_api_matches_the_metrics(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(make_config(targets=three_targets(tmp_path)))
    base = daemon.url.removesuffix("/metrics")
    doc = json.loads(fetch(base + "/api/v1/targets"))
    samples = scrape(daemon.url)
    assert doc["version"] == 1
    assert doc["state"] == "down"
    states = {t["name"]: t["state"] for t in doc["targets"]}
    assert states == {"healthy": "ok", "stale": "failing", "missing": "down"}
    for target in doc["targets"]:
        name = target["name"]
        assert target["count"] == value(samples, "backup_count", target=name)
        assert target["up"] == bool(value(samples, "backup_target_up", target=name))
        for check in target["checks"]:
            assert check["ok"] == bool(
                value(samples, "backup_check_ok", target=name, check=check["name"])
            )
            assert check["firing"] == bool(
                value(samples, "backup_alert_firing", target=name, check=check["name"])
            )
    stale = next(t for t in doc["targets"] if t["name"] == "stale")
    assert stale["newest"]["age"].startswith("3d 0h")
    assert stale["max_age"] == "24h"
    assert stale["path"] == str(tmp_path / "stale")
    wait_for(lambda: json.loads(fetch(base + "/api/v1/alerts"))["alerts"])
    alerts = json.loads(fetch(base + "/api/v1/alerts"))
    assert {(a["target"], a["check"]) for a in alerts["alerts"]} == {
        ("stale", "age"),
        ("missing", "target_down"),
    }


def test_hide_paths(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(make_config(targets=three_targets(tmp_path), hide_paths=True))
    base = daemon.url.removesuffix("/metrics")
    text = fetch(base + "/api/v1/targets") + fetch(base + "/api/v1/alerts") + fetch(base + "/")
    assert str(tmp_path) not in text
    assert "<missing>: directory does not exist" in text


def test_status_command(tmp_path: Path, start_daemon) -> None:
    targets = three_targets(tmp_path)
    daemon = start_daemon(make_config(targets=targets[:1]))
    base = daemon.url.removesuffix("/metrics")
    result = run_cli("status", "--url", base)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["TARGET", "STATE"]
    assert lines[1].split()[:3] == ["healthy", "ok", "backup-1.db"]
    assert "\x1b[" not in result.stdout  # no colour when not a terminal
    failing = start_daemon(make_config(targets=targets[:2]))
    assert run_cli("status", "--url", failing.url.removesuffix("/metrics")).returncode == 1
    down = start_daemon(make_config(targets=targets))
    result = run_cli("status", "--url", down.url.removesuffix("/metrics"), "--format", "json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["state"] == "down"
    unreachable = run_cli("status", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 4
    assert unreachable.stderr.startswith("backup-monitor: cannot get the status from")


def test_health_command(tmp_path: Path, start_daemon) -> None:
    """`health` (the container HEALTHCHECK) exits 0 on a healthy daemon, 1 with one line if not."""
    daemon = start_daemon(make_config(targets=three_targets(tmp_path)[:1]))
    healthy = run_cli("health", "--url", daemon.url.removesuffix("/metrics"))
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.strip() == "ok"
    unreachable = run_cli("health", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("backup-monitor: unhealthy: http://127.0.0.1:9/healthz:")
    assert len(unreachable.stderr.splitlines()) == 1


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        message = (
            "chromium or chromedriver not found: install the Debian packages "
            "'chromium' and 'chromium-driver' (make test does)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_status_page_in_a_real_browser(tmp_path: Path, start_daemon, browser) -> None:
    from selenium.webdriver.common.by import By

    daemon = start_daemon(make_config(targets=three_targets(tmp_path), status_refresh="1s"))
    browser.get(daemon.url.removesuffix("/metrics") + "/")

    # Read through one script call: the page replaces its rows at every refresh, so an
    # element found a moment earlier may already be gone.
    def state(name: str) -> str | None:
        return browser.execute_script(
            "const r = document.getElementById(arguments[0]); return r ? r.dataset.state : null;",
            f"target-{name}",
        )

    wait_for(lambda: state("missing") == "down", timeout=15)
    assert state("healthy") == "ok"
    assert state("stale") == "failing"
    stale_row = browser.execute_script("return document.getElementById('target-stale').innerText;")
    assert "3d 0h" in stale_row
    assert "firing since" in stale_row or "age" in stale_row
    assert (
        browser.execute_script("return document.getElementById('overall').textContent;") == "down"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
    # A new backup lands: the page updates by itself, without a reload.
    marker = browser.execute_script("window.notReloaded = true; return window.notReloaded;")
    assert marker is True
    write_backup(tmp_path / "stale" / "backup-2.db", 4096)
    wait_for(lambda: state("stale") == "ok", timeout=15)
    assert browser.execute_script("return window.notReloaded === true;")
    # Readable on a phone: the table turns into one card per target.
    browser.set_window_size(390, 844)
    header = browser.find_element(By.CSS_SELECTOR, "thead")
    assert not header.is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "status-page-phone.png"))


def test_a_jobs_output_and_a_failed_drill_on_the_page(
    tmp_path: Path, start_daemon, browser
) -> None:
    write_backup(tmp_path / "db" / "backup-1.db", 4096, time.time() - 600)
    targets = [{"name": "db", "path": str(tmp_path / "db"), "job": {}, "drill": {}}]
    daemon = start_daemon(make_config(targets=targets, status_refresh="1s"))
    now = time.time()
    reason = "api_keys: 10 rows restored, 1000 live (1%, min 90%)"
    daemon.targets[0].drill.add_round([DrillResult("backup-1.db", now, False, reason, now, 2.5)])
    page = daemon.url.removesuffix("/metrics")
    hostile = b'pg_dump: error\n<img src=x onerror="window.pwned=1"><b>bold</b>\n'
    request = urllib.request.Request(page + "/ping/db/3", data=hostile)
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    browser.get(page + "/")

    def job_cell() -> str | None:
        return browser.execute_script(
            "const r = document.getElementById('target-db');"
            "return r ? r.querySelector('td[data-label=Job]').textContent : null;"
        )

    wait_for(lambda: "FAILED (exit 3)" in (job_cell() or ""), timeout=15)
    assert '<img src=x onerror="window.pwned=1"><b>bold</b>' in job_cell()  # as text
    assert browser.execute_script("return window.pwned === undefined;")
    assert browser.execute_script("return document.querySelector('#target-db img') === null;")
    drill_cell = browser.execute_script(
        "return document.querySelector('#target-db td[data-label=Drill]').textContent;"
    )
    assert "FAILED: backup-1.db · 2.5 s" in drill_cell
    assert reason in drill_cell
