"""Shared helpers: real daemons on ephemeral ports, scraping, waiting with deadlines."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config
from exporter.daemon import Daemon

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def require_tool(tool: str, package: str) -> str:
    """The tool's path; skips naming the Debian package, or fails when CI=true."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not found: install the Debian package '{package}' (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block (skipped unless root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy; returns its value or fails at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s (last value: {last!r})")


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def parse_samples(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str) -> Samples:
    return parse_samples(fetch(url))


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def write_backup(path: Path, size: int, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# Where make_config puts state directories: under pytest's own temporary directory (set
# for the session below), never loose in the system's.
_state_root: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _state_directories(tmp_path_factory: pytest.TempPathFactory) -> None:
    _state_root.append(tmp_path_factory.mktemp("state"))


def make_config(**kwargs: Any) -> Config:
    base: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "rescan_interval": "1h",
        "state_dir": tempfile.mkdtemp(prefix="state-", dir=_state_root[0]),
    }
    base.update(kwargs)
    # Test files are filler bytes, written whole: content checks and settling only where
    # a test asks for them.
    base["targets"] = [{"verify": "none", "settle": 0, **t} for t in base.get("targets", [])]
    return Config.model_validate(base)


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    """Start real daemons on ephemeral ports; all are stopped after the test."""
    started: list[Daemon] = []

    def start(config: Config, **kwargs: Any) -> Daemon:
        daemon = Daemon(config, **kwargs)
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
