"""The bundled Prometheus rules and Grafana dashboard, rendered for a metric namespace.

Both are written for the default ``backup_`` names; a configuration with another
``namespace`` (the quota-proxy example keeps the original textfile script's
``quota_proxy_backup_`` names) gets them rendered with its own prefix. The
daemon's own ``backup_monitor_`` series never change name.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT_NAMESPACE = "backup"
_METRIC = re.compile(r"\bbackup_(?!monitor_)")
DASHBOARD = "backup-monitor.json"


class NotBundled(Exception):
    """The file is not installed with this copy of backup-monitor."""


def namespaced(text: str, namespace: str) -> str:
    """``text`` with every per-target metric name moved to ``namespace``."""
    if namespace == DEFAULT_NAMESPACE:
        return text
    return _METRIC.sub(namespace + "_", text)


def _bundled(source: str, installed: str) -> str:
    """A bundled file, from a source checkout or where the wheel installs data files."""
    candidates = (
        Path(__file__).resolve().parents[2] / source,
        Path(sys.prefix) / "share" / "backup-monitor" / installed,
    )
    for path in candidates:
        if path.is_file():
            return path.read_text()
    raise NotBundled(f"{Path(source).name} is not installed here")


def rules_text() -> str:
    return _bundled("alerts/prometheus/backup-monitor.rules.yml", "alerts/backup-monitor.rules.yml")


def dashboard_text() -> str:
    return _bundled(f"grafana/dashboards/{DASHBOARD}", f"grafana/{DASHBOARD}")
