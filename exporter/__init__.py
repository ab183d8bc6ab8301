"""backup-monitor: a Prometheus exporter and alerting monitor for backup directories."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("backup-monitor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
