"""The hardened systemd unit passes systemd-analyze verify."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool
from tests.helpers import ROOT

UNIT = ROOT / "deploy" / "backup-monitor.service"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    text = UNIT.read_text()
    for setting in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=backup-monitor",
        "ReadOnlyPaths=",
        "User=backup-monitor",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert setting in text
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    command = shutil.which("backup-monitor") or str(Path(sys.executable).parent / "backup-monitor")
    unit = tmp_path / "backup-monitor.service"
    unit.write_text(text.replace("/opt/backup-monitor/bin/backup-monitor", command))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == ""


def test_backup_job_unit_runs_the_job_through_the_wrapper(tmp_path: Path) -> None:
    """The example job unit and its timer verify, and its ExecStart is `run` around the job."""
    analyze = require_tool("systemd-analyze", "systemd")
    service = (ROOT / "deploy" / "quota-proxy-backup.service").read_text()
    assert "backup-monitor run --config /etc/backup-monitor/config.yml --target quota-proxy --" in (
        service
    )
    command = shutil.which("backup-monitor") or str(Path(sys.executable).parent / "backup-monitor")
    script = tmp_path / "backup.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (tmp_path / "quota-proxy-backup.service").write_text(
        service.replace("/opt/backup-monitor/bin/backup-monitor", command).replace(
            "/opt/roc/quota-proxy/scripts/backup-quota-proxy-db.sh", str(script)
        )
    )
    timer = (ROOT / "deploy" / "quota-proxy-backup.timer").read_text()
    (tmp_path / "quota-proxy-backup.timer").write_text(timer)
    for name in ("quota-proxy-backup.service", "quota-proxy-backup.timer"):
        result = subprocess.run(
            [analyze, "verify", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # A Wants= on backup-monitor.service, not installed here, is the only remark allowed.
        lines = result.stderr.splitlines()
        remarks = [line for line in lines if "backup-monitor.service" not in line]
        assert remarks == [], result.stderr
