"""Churn soak: random file operations on several targets while /metrics is scraped.

After the writers stop, every target's metrics must equal a fresh scan, exactly.
SOAK_SECONDS sets the length (60 in the suite; `make soak` runs longer) and
SOAK_SEED replays a failure (the seed is printed in every failure message).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path

from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher
from tests.conftest import fetch, make_config, parse_samples, value

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))


def churn(
    root: Path, outside: Path, rng: random.Random, stop: threading.Event, recursive: bool
) -> int:
    """Random operations until stopped; returns how many were done."""
    done = 0
    while not stop.is_set():
        done += 1
        root.mkdir(exist_ok=True)
        sub = root / f"sub{rng.randrange(3)}" if recursive and rng.random() < 0.5 else root
        sub.mkdir(exist_ok=True)
        names = [p for p in sub.iterdir() if p.is_file()] if sub.exists() else []
        roll = rng.random()
        try:
            if roll < 0.30 or not names:
                path = sub / f"backup-{rng.randrange(200):03d}.db"
                path.write_bytes(os.urandom(rng.randrange(1, 4096)))
            elif roll < 0.45:
                with open(rng.choice(names), "ab") as handle:
                    handle.write(b"x" * rng.randrange(1, 2048))
            elif roll < 0.55:
                os.rename(rng.choice(names), sub / f"renamed-{rng.randrange(200):03d}.db")
            elif roll < 0.63:
                os.rename(rng.choice(names), outside / f"out-{done}.db")
            elif roll < 0.71:
                moved = list(outside.iterdir())
                if moved:
                    os.rename(rng.choice(moved), sub / f"in-{done}.db")
            elif roll < 0.80:
                tmp = sub / f"backup-{done}.db.part"
                tmp.write_bytes(os.urandom(rng.randrange(1, 1024)))
                os.rename(tmp, sub / f"backup-{rng.randrange(200):03d}.db")
            elif roll < 0.97:
                rng.choice(names).unlink()
            elif roll < 0.99 and recursive and sub != root:
                shutil.rmtree(sub)
            else:
                shutil.rmtree(root)
        except (FileNotFoundError, NotADirectoryError):
            pass  # raced with this writer's own directory removal
    return done


def truth(root: Path, recursive: bool) -> dict[str, float]:
    try:
        files = scan_target(str(root), Matcher(["*"], [".*", "*.part"]), recursive)
    except Exception:  # noqa: BLE001 - a missing root is a count of zero
        files = {}
    newest = max(files.items(), key=lambda kv: (kv[1][1], kv[0]), default=None)
    return {
        "count": len(files),
        "total_size_bytes": sum(size for size, _ in files.values()),
        "newest_size_bytes": newest[1][0] if newest else 0,
        "newest_timestamp_seconds": newest[1][1] if newest else 0,
    }


def test_churn_soak(tmp_path: Path, start_daemon) -> None:
    seed = int(os.environ.get("SOAK_SEED", random.randrange(2**32)))
    targets = {"flat-a": False, "flat-b": False, "tree": True}
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in targets:
        (tmp_path / name).mkdir()
    config = make_config(
        targets=[
            {"name": n, "path": str(tmp_path / n), "recursive": r, "exclude": [".*", "*.part"]}
            for n, r in targets.items()
        ],
        retry_interval="0.2s",
    )
    daemon = start_daemon(config)
    stop = threading.Event()
    scrapes = [0]

    def scraper() -> None:
        while not stop.is_set():
            parse_samples(fetch(daemon.url))  # must always be a valid exposition
            scrapes[0] += 1

    threads = [threading.Thread(target=scraper)]
    counts: dict[str, int] = {}
    for offset, (name, recursive) in enumerate(targets.items()):
        rng = random.Random(seed + offset)
        threads.append(
            threading.Thread(
                target=lambda n=name, r=recursive, g=rng: counts.__setitem__(
                    n, churn(tmp_path / n, outside, g, stop, r)
                )
            )
        )
    for thread in threads:
        thread.start()
    stop.wait(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(30)
    for name in targets:
        (tmp_path / name).mkdir(exist_ok=True)  # a removed root comes back empty at worst

    def differences() -> list[str]:
        samples = parse_samples(fetch(daemon.url))
        return [
            f"{name} {key}: metrics {value(samples, f'backup_{key}', target=name)} != {expected}"
            for name, recursive in targets.items()
            for key, expected in truth(tmp_path / name, recursive).items()
            if value(samples, f"backup_{key}", target=name) != expected
        ]

    deadline = time.monotonic() + 30
    while (diff := differences()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not diff, f"seed {seed}: after quiesce, metrics differ from a fresh scan: {diff}"
    assert scrapes[0] > 10, f"seed {seed}: scraper starved"
    assert sum(counts.values()) > 100, f"seed {seed}: writers did too little: {counts}"
    print(f"soak seed {seed}: {counts} operations, {scrapes[0]} scrapes in {SECONDS:g}s")
