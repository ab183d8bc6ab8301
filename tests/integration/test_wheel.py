"""The wheel installs one top-level package, exporter, and the bundled rules and dashboard."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import ROOT


def test_the_wheel_holds_exporter_alone(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    built = subprocess.run(
        [*pip, "-w", str(tmp_path), str(ROOT)],
        check=False,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("backup_monitor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {
        n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))
    }
    assert packages == {"exporter"}
    data = {n.split("/data/", 1)[1] for n in names if ".data/data/" in n}
    assert data == {
        "share/backup-monitor/alerts/backup-monitor.rules.yml",
        "share/backup-monitor/grafana/backup-monitor.json",
    }
    assert "exporter/web/static/status.html" in names
