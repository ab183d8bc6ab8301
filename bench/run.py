"""backup-monitor benchmarks, side by side with the alternatives, in one run.

    python -m bench.run [--quick] [--json FILE]

See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    Child,
    find_pipeline,
    http_get,
    make_tree,
    repeat,
    serve_child,
    summary,
    wait_until,
)
from exporter.config import Config
from exporter.daemon import Daemon
from exporter.sources.supervisor import scan_into_index
from exporter.target import Target
from tests.peers import WebhookReceiver, free_port


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def config_for(path: Path, recursive: bool = False, **settings: Any) -> Config:
    """One target ``t`` on ``path``; ``settings`` are global (watch_mode, poll_interval)."""
    target = {"name": "t", "path": str(path), "patterns": ["backup-*"], "verify": "none"}
    return Config.model_validate(
        {
            "listen": "127.0.0.1:0",
            "rescan_interval": "1h",
            "state_dir": tempfile.mkdtemp(),
            "targets": [{**target, "recursive": recursive}],
            **settings,
        }
    )


# --- 1. initial scan -----------------------------------------------------------------


def bench_scan(trees: dict[str, Path], reps: int) -> list[dict[str, Any]]:
    rows = []
    for label, root in trees.items():
        recursive = "tree" in label
        cfg = config_for(root, recursive=recursive).targets[0]

        def ours(cfg=cfg) -> Target:
            target = Target(cfg)
            scan_into_index(target, time.time)
            return target  # the daemon keeps its index: freeing it is not part of a scan

        ours_s = summary(repeat(ours, reps))
        find_s = summary(repeat(lambda root=root: find_pipeline(root), reps))
        rows.append(
            {
                "files": label,
                "backup-monitor": ours_s,
                "find|sort|head": find_s,
                "ratio": ours_s["median"] / find_s["median"],
            }
        )
    return rows


# --- 2. scrape latency ---------------------------------------------------------------

WARM_UP = 20  # scrapes before measuring


def bench_scrape(
    trees: dict[str, Path], tmp: Path, reps: int, baseline_reps: int
) -> list[dict[str, Any]]:
    """Both exporters in child processes of their own; this process is only the client."""
    rows = []
    for label, root in trees.items():
        recursive = "tree" in label
        port = free_port()
        state = tmp / f"state-scrape-{port}"
        daemon = serve_child([f"t={root}"], port, "inotify", state, recursive=recursive)
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            # Warm up: a just-started daemon is still settling its heap and running its first
            # evaluation rounds; Prometheus scrapes one that has been up for a while.
            size = max(len(http_get(url)) for _ in range(WARM_UP))
            ours = summary(repeat(lambda u=url: http_get(u), reps))
        finally:
            daemon.stop()
        args = [str(root), "tree"] if recursive else [str(root)]
        base = _measure_baseline(args, baseline_reps)
        rows.append(
            {
                "files": label,
                "backup-monitor": ours,
                "scan-per-scrape": base,
                "speedup_p99": base["p99"] / ours["p99"],
                "bytes": size,
            }
        )
    return rows


def bench_scrape_floor(size: int, reps: int) -> dict[str, float]:
    """The same HTTP server answering a constant body of ``size`` bytes: what any scrape of
    a Python exporter costs on this machine before it renders anything."""
    return _measure_baseline(["--constant", str(size)], reps)


def _measure_baseline(args: list[str], reps: int) -> dict[str, float]:
    """``python -m bench.baseline`` with ``args`` (the port is inserted) measured from here."""
    port = free_port()
    child = Child([sys.executable, "-m", "bench.baseline", str(port), *args])
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: _answers(url), 60, 0.05)
        http_get(url)  # one warm-up scrape: each of these is a whole scan
        return summary(repeat(lambda: http_get(url), reps))
    finally:
        child.stop()


def _answers(url: str) -> bool:
    try:
        http_get(url.replace("/metrics", "/healthz"))
    except OSError:
        return False
    return True


# --- 3. detection latency --------------------------------------------------------------


def bench_detection(tmp: Path, files: int, poll_files: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode, count in (("inotify", files), ("polling", poll_files)):
        root = tmp / f"detect-{mode}"
        root.mkdir()
        daemon = Daemon(config_for(root, watch_mode=mode, poll_interval="1s"))
        daemon.start()
        samples = []
        try:
            for i in range(count):
                path = root / f"backup-{i:05d}.db"
                with open(path, "wb") as handle:
                    handle.write(b"x" * 100)
                closed = time.perf_counter()
                needle = f'backup_count{{target="t"}} {i + 1}.0'.encode()
                wait_until(lambda d=daemon, n=needle: n in http_get(d.url), timeout=10)
                samples.append(time.perf_counter() - closed)
        finally:
            daemon.stop()
        results[mode] = summary(samples)
    results["alert"] = bench_alert_path(tmp)
    return results


def bench_alert_path(tmp: Path, targets: int = 5) -> dict[str, float]:
    """Age threshold crossed with no file activity -> webhook received."""
    receiver = WebhookReceiver()
    crossings = {}
    max_age = 3.0
    target_cfgs = []
    now = time.time()
    for i in range(targets):
        root = tmp / f"alert-{i}"
        root.mkdir()
        path = root / "backup-1.db"
        path.write_bytes(b"x" * 4096)
        mtime = now - max_age + 1.0 + i * 0.7
        os.utime(path, (mtime, mtime))
        crossings[f"a{i}"] = mtime + max_age
        target_cfgs.append(
            {"name": f"a{i}", "path": str(root), "max_age": max_age, "verify": "none"}
        )
    config = Config.model_validate(
        {
            "listen": "127.0.0.1:0",
            "state_dir": tempfile.mkdtemp(),
            "targets": target_cfgs,
            "notify": {"urls": [receiver.url()]},
        }
    )
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_until(lambda: len(receiver.requests) >= targets, timeout=30, interval=0.005)
    finally:
        daemon.stop()
        receiver.stop()
    received = {
        request["title"].rsplit(": ", 1)[1]: at
        for request, at in zip(receiver.requests, receiver.times, strict=True)
    }
    return summary([received[name] - crossings[name] for name in crossings])


# --- 4. event throughput -----------------------------------------------------------------


def bench_throughput(tmp: Path, files: int) -> dict[str, Any]:
    root = tmp / "churn"
    root.mkdir()
    port = free_port()
    child = serve_child([f"t={root}"], port, "inotify", tmp / "state-churn")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        cpu_before = child.cpu_seconds()
        started = time.perf_counter()
        for i in range(files):
            (root / f"backup-{i:06d}.db").write_bytes(b"x" * 10)
        for i in range(files):
            with open(root / f"backup-{i:06d}.db", "ab") as handle:
                handle.write(b"y")
        for i in range(0, files, 2):
            (root / f"backup-{i:06d}.db").unlink()
        written = time.perf_counter() - started
        expected = f'backup_count{{target="t"}} {files - (files + 1) // 2}.0'.encode()
        total = (
            f'backup_total_size_bytes{{target="t"}} {(files - (files + 1) // 2) * 11}.0'.encode()
        )
        lag = wait_until(lambda: expected in (body := http_get(url)) and total in body, 120, 0.05)
        cpu = child.cpu_seconds() - cpu_before
    finally:
        child.stop()
    operations = files * 2 + (files + 1) // 2
    return {
        "operations": operations,
        "seconds": written,
        "ops_per_second": operations / written,
        "lag_to_exact_seconds": lag,
        "daemon_cpu_seconds": cpu,
    }


# --- 5. footprint --------------------------------------------------------------------------


def bench_memory(trees: dict[str, Path], tmp: Path) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for label, root in trees.items():
        port = free_port()
        child = serve_child([f"t={root}"], port, "inotify", tmp / f"state-mem-{label}")
        try:
            http_get(f"http://127.0.0.1:{port}/metrics")
            rows[label] = child.rss_bytes()
        finally:
            child.stop()
    return rows


def synthetic_rss(count: int) -> int:
    """RSS of a process holding an index of ``count`` entries built by apply_scan."""
    code = (
        "import os, sys; from exporter.index import TargetIndex;"
        f"n={count}; idx=TargetIndex('t','/t');"
        "idx.apply_scan({f'backup-{i:07d}.db': (1000+i % 997, 1.7e9+i) for i in range(n)}, set(), 0, 0);"
        "idx.snapshot();"
        "print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def bench_idle_cpu(root: Path, tmp: Path, seconds: float) -> dict[str, float]:
    results = {}
    for mode in ("inotify", "polling"):
        port = free_port()
        child: Child = serve_child([f"t={root}"], port, mode, tmp / f"state-idle-{mode}")
        try:
            time.sleep(2)  # let start-up work finish before measuring idleness
            before = child.cpu_seconds()
            time.sleep(seconds)
            results[mode] = (child.cpu_seconds() - before) / seconds * 100
        finally:
            child.stop()
    return results


# --- 6. many targets ------------------------------------------------------------------------


def make_fleet(root: Path, targets: int, days: int) -> Path:
    """``targets`` directories, each a nightly series of ``days`` backups, and a config
    with schedule, gaps, retention and growth checks for every one."""
    now = time.time()
    lines = ["targets:"]
    for t in range(targets):
        directory = root / f"host-{t:03d}"
        directory.mkdir(parents=True)
        for day in range(days):
            stamp = (now // 86400 - day) * 86400 + 7200  # 02:00 UTC, day by day
            if stamp > now:
                continue
            path = directory / time.strftime("backup-%Y-%m-%d-02-00-00.db", time.gmtime(stamp))
            path.write_bytes(b"x" * (4096 + day))
            os.utime(path, (stamp, stamp))
        lines.append(
            f"  - {{name: host-{t:03d}, path: '{directory}', patterns: ['backup-*'], "
            "verify: none, schedule: '0 2 * * *', timezone: UTC, retention: 30d, "
            "gaps: true, max_growth: 50%}"
        )
    config = root / "fleet.yml"
    config.write_text("\n".join(lines) + "\n")
    return config


def bench_many_targets(
    tmp: Path, targets: int, days: int, reps: int, idle: float
) -> dict[str, Any]:
    """A central backup server: scrape and API latency at ``targets`` targets next to
    prometheus-client rendering as many samples with nothing computed, and idle CPU."""
    config = make_fleet(tmp / "fleet", targets, days)
    port = free_port()
    env = {"BACKUP_MONITOR_STATE_DIR": str(tmp / "state-fleet")}
    args = [sys.executable, "-m", "exporter", "serve", "--config", str(config)]
    daemon = Child([*args, "--listen", f"127.0.0.1:{port}", "--log-level", "error"], env)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: _answers(url), 300, 0.05)
        body = max((http_get(url) for _ in range(WARM_UP)), key=len)
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        scrape = summary(repeat(lambda: http_get(url), reps))
        api_url = url.replace("/metrics", "/api/v1/targets")
        api = summary(repeat(lambda: http_get(api_url), max(10, reps // 2)))
        before = daemon.cpu_seconds()
        time.sleep(idle)
        idle_cpu = (daemon.cpu_seconds() - before) / idle * 100
    finally:
        daemon.stop()
    floor_port = free_port()
    floor = Child(
        [sys.executable, "-m", "bench.baseline", str(floor_port), "--samples", str(samples)]
    )
    floor_url = f"http://127.0.0.1:{floor_port}/metrics"
    try:
        wait_until(lambda: _answers(floor_url), 60, 0.05)
        for _ in range(WARM_UP):
            http_get(floor_url)
        rendered = summary(repeat(lambda: http_get(floor_url), reps))
    finally:
        floor.stop()
    return {
        "targets": targets,
        "days": days,
        "samples": samples,
        "scrape": scrape,
        "api": api,
        "floor": rendered,
        "scrape_ratio": scrape["median"] / rendered["median"],
        "api_ratio": api["median"] / rendered["median"],
        "idle_cpu_percent": idle_cpu,
    }


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--only", choices=["many-targets"], help="run one section alone (its table only)"
    )
    args = parser.parse_args()
    if args.only == "many-targets":
        tmp = Path(tempfile.mkdtemp(prefix="backup-monitor-bench-"))
        try:
            fleet = bench_many_targets(tmp, 200, 30, 20 if args.quick else 100, 30.0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(render_many_targets(fleet))
        return
    sizes = [1000, 10_000] if args.quick else [1000, 10_000, 100_000]
    tree = (10_000, 100) if args.quick else (100_000, 1000)
    reps = 5 if args.quick else 11
    idle = 5.0 if args.quick else 60.0

    results: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
        },
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    tmp = Path(tempfile.mkdtemp(prefix="backup-monitor-bench-"))
    try:
        trees = {}
        for size in sizes:
            trees[f"{size:,}"] = tmp / f"flat-{size}"
            make_tree(trees[f"{size:,}"], size)
        trees[f"{tree[0]:,} in {tree[1]:,} folders (tree)"] = tmp / "tree"
        make_tree(tmp / "tree", tree[0], folders=tree[1])
        print("1/6 initial scan", file=sys.stderr)
        results["scan"] = bench_scan(trees, reps)
        print("2/6 scrape latency", file=sys.stderr)
        results["scrape"] = bench_scrape(trees, tmp, 200, 20)
        size = max(row["bytes"] for row in results["scrape"])
        results["scrape_floor"] = bench_scrape_floor(size, 200)
        print("3/6 detection latency", file=sys.stderr)
        results["detection"] = bench_detection(tmp, 200, 20 if args.quick else 200)
        print("4/6 event throughput", file=sys.stderr)
        results["throughput"] = bench_throughput(tmp, 2000 if args.quick else 20_000)
        print("5/6 footprint", file=sys.stderr)
        empty = tmp / "empty"
        empty.mkdir()
        footprint = {
            "0": empty,
            **{k: v for k, v in trees.items() if "tree" not in k and k != "1,000"},
        }
        results["memory"] = bench_memory(footprint, tmp)
        results["memory_synthetic"] = {f"{n:,}": synthetic_rss(n) for n in (100_000, 1_000_000)}
        results["idle_cpu_percent"] = bench_idle_cpu(trees[f"{sizes[1]:,}"], tmp, idle)
        print("6/6 many targets", file=sys.stderr)
        results["many_targets"] = bench_many_targets(tmp, 200, 30, 20 if args.quick else 100, idle)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def side_by_side(
    rows: list[dict[str, Any]], other: str, title: str, figure: str, spec: str
) -> list[str]:
    """A table of ours next to ``other`` per size, median / p99, and one comparing figure."""
    lines = [f"   {'files':<32} {'backup-monitor':>22} {other:>22} {title:>7}"]
    for row in rows:
        a, b = row["backup-monitor"], row[other]
        lines.append(
            f"   {row['files']:<32} {ms(a['median']):>10} / {ms(a['p99']):>9} "
            f"{ms(b['median']):>10} / {ms(b['p99']):>9} {row[figure]:>7{spec}}"
        )
    return lines


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"backup-monitor benchmark, {r['started']}: Python {m['python']}, {m['cpus']} CPUs, {m['platform']}",
        "",
    ]
    lines.append("1. Initial scan (median / p99)")
    lines += side_by_side(r["scan"], "find|sort|head", "ratio", "ratio", ".2f")
    lines += ["", "2. Scrape latency over HTTP (median / p99)"]
    lines += side_by_side(r["scrape"], "scan-per-scrape", "p99 x", "speedup_p99", ".0f")
    floor, size = r["scrape_floor"], max(row["bytes"] for row in r["scrape"])
    lines.append(
        f"   {'floor: same server, constant body':<32} {ms(floor['median']):>10} / "
        f"{ms(floor['p99']):>9}   ({size:,} bytes, no work: this machine's HTTP cost)"
    )
    d = r["detection"]
    lines += ["", "3. Detection latency: file closed -> visible in /metrics (median / p99)"]
    for mode in ("inotify", "polling"):
        lines.append(
            f"   {mode:<10} {ms(d[mode]['median']):>10} / {ms(d[mode]['p99']):>10}  (n={d[mode]['n']})"
            + ("  poll_interval 1s" if mode == "polling" else "")
        )
    lines.append(
        f"   age threshold crossed -> webhook received: {ms(d['alert']['median'])} / {ms(d['alert']['p99'])} (n={d['alert']['n']})"
    )
    t = r["throughput"]
    lines += [
        "",
        "4. Event throughput (create, append, delete)",
        f"   {t['operations']:,} operations in {t['seconds']:.2f} s = {t['ops_per_second']:,.0f} ops/s; "
        f"metrics exact {t['lag_to_exact_seconds']:.2f} s after the last one; daemon CPU {t['daemon_cpu_seconds']:.2f} s",
    ]
    lines += ["", "5. Footprint"]
    for label, rss in r["memory"].items():
        lines.append(f"   RSS with {label:>8} files indexed (real daemon): {rss / 2**20:7.1f} MiB")
    for label, rss in r["memory_synthetic"].items():
        lines.append(
            f"   RSS of an index of {label:>9} entries (index only): {rss / 2**20:7.1f} MiB"
        )
    for mode, pct in r["idle_cpu_percent"].items():
        lines.append(f"   idle CPU, {mode}: {pct:.3f} % of one core")
    if "many_targets" in r:
        lines += ["", render_many_targets(r["many_targets"])]
    return "\n".join(lines)


def render_many_targets(m: dict[str, Any]) -> str:
    rows = [f"   {'':<36} {'median':>10} {'p99':>10}"]
    for label, figures in (
        ("GET /metrics", m["scrape"]),
        ("GET /api/v1/targets", m["api"]),
        ("floor: prometheus-client, constant", m["floor"]),
    ):
        rows.append(f"   {label:<36} {ms(figures['median']):>10} {ms(figures['p99']):>10}")
    return "\n".join(
        [
            f"6. Many targets: {m['targets']} targets x {m['days']}-day nightly series "
            f"(schedule, gaps, retention, growth), {m['samples']:,} samples",
            *rows,
            f"   scrape / floor: {m['scrape_ratio']:.2f} (target <= 2.5); "
            f"API / floor: {m['api_ratio']:.2f} (target <= 2.5)",
            f"   idle CPU at {m['targets']} targets: {m['idle_cpu_percent']:.3f} % of one core "
            "(target < 1)",
        ]
    )


if __name__ == "__main__":
    main()
