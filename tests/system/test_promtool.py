"""promtool (Debian's prometheus package) lints a real scrape of the real exporter."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import fetch, make_config, require_tool, write_backup
from tests.helpers import KEPT_LINT, promtool_problems


# The one lint kept on purpose: backup_count's name (see its HELP text).
def test_promtool_check_metrics_on_a_real_scrape(tmp_path: Path, start_daemon) -> None:
    promtool = require_tool("promtool", "prometheus")
    write_backup(tmp_path / "ok" / "backup-1.db", 4096)
    (tmp_path / "empty").mkdir()
    config = make_config(
        targets=[
            {"path": str(tmp_path / "ok"), "min_count": 1, "labels": {"env": "prod"}},
            {"path": str(tmp_path / "empty")},
            {"path": str(tmp_path / "missing")},
        ]
    )
    daemon = start_daemon(config)
    assert promtool_problems(promtool, fetch(daemon.url)) == [KEPT_LINT]
