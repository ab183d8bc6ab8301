"""The system tier: real Prometheus, promtool, a browser, systemd, the container. All slow."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/system/" in str(item.path):
            item.add_marker(pytest.mark.slow)
