"""The measuring parts of the benchmark: trees, timers, percentiles, a daemon in a child process."""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p99": percentile(values, 0.99),
    }


def make_tree(root: Path, files: int, folders: int = 0, seed: int = 1) -> int:
    """``files`` backups (varied sizes and mtimes), flat or spread over ``folders``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for i in range(files):
        directory = root / f"d{i % folders:04d}" if folders else root
        if folders and i < folders:
            directory.mkdir(exist_ok=True)
        path = directory / f"backup-{i:07d}.db"
        with open(path, "wb") as handle:
            handle.write(b"\0" * rng.randrange(64, 2048))
        stamp = now - rng.randrange(0, 90 * 86400)
        os.utime(path, (stamp, stamp))
    return files


def repeat(action: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        result = action()
        samples.append(time.perf_counter() - started)
        del result  # freeing what the action built (a whole index) is not part of its time
    return samples


def find_pipeline(root: Path) -> str:
    """What a cron script does: find | sort | head, in a shell, on the same files."""
    command = f"find {root} -name 'backup-*' -type f -printf '%T@ %s %p\\n' | sort -nr | head -1"
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True
    ).stdout


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


class Child:
    """A process whose memory and CPU can be read from /proc."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * PAGE

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve_child(
    targets: list[str], port: int, mode: str, state_dir: Path, recursive: bool = False
) -> Child:
    """The real daemon, as a user would run it, in its own process."""
    config = state_dir.parent / f"{state_dir.name}.yml"
    lines = ["targets:"]
    for spec in targets:
        name, path = spec.split("=", 1)
        lines.append(
            f"  - {{name: {name}, path: '{path}', recursive: {str(recursive).lower()}, "
            "patterns: ['backup-*'], verify: none}"
        )
    config.write_text("\n".join(lines) + "\n")
    args = [sys.executable, "-m", "exporter", "serve", "--config", str(config)]
    args += ["--listen", f"127.0.0.1:{port}", "--log-level", "error"]
    env = {
        "BACKUP_MONITOR_WATCH_MODE": mode,
        "BACKUP_MONITOR_POLL_INTERVAL": "1s",
        "BACKUP_MONITOR_STATE_DIR": str(state_dir),
        "BACKUP_MONITOR_RESCAN_INTERVAL": "1h",
    }
    child = Child(args, env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            http_get(f"http://127.0.0.1:{port}/healthz")
            return child
        except OSError:
            if child.proc.poll() is not None:
                raise RuntimeError("the daemon exited during start-up") from None
            time.sleep(0.05)
    child.stop()
    raise RuntimeError("the daemon did not start in time")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.001) -> float:
    """Seconds until predicate() held (polling every ``interval``); raises on timeout."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("condition not met")
        time.sleep(interval)
    return time.perf_counter() - started
