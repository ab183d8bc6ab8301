"""``python -m exporter`` is the ``backup-monitor`` command."""

from exporter.cli import main

main(prog_name="backup-monitor")
