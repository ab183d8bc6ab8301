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
