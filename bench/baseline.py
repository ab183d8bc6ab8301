"""The baselines of the scrape benchmark, each run as a child process:

python -m bench.baseline PORT DIR [tree]    scan per scrape: an exporter that lists the
                                            directory at every scrape, as glob-at-scrape
                                            exporters do
python -m bench.baseline PORT --constant BYTES
                                            the floor: the daemon's HTTP server answering
                                            a constant body of that size, no work at all
python -m bench.baseline PORT --samples N   prometheus-client rendering N constant samples
                                            (in families of 200) through its own WSGI app:
                                            the floor of the many-targets benchmark
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher
from exporter.web.app import HttpServer

MATCHER = Matcher(["backup-*"], [".*"])


def scan_per_scrape_app(root: Path, recursive: bool) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        files = scan_target(str(root), MATCHER, recursive)
        newest = max(files.values(), key=lambda v: v[1], default=(0, 0.0))
        body = (
            f"backup_count {len(files)}\nbackup_age_seconds {time.time() - newest[1]}\n"
            f"backup_total_size_bytes {sum(v[0] for v in files.values())}\n"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app


def constant_app(size: int) -> Callable[..., Iterable[bytes]]:
    body = b"#" * size

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app


class ConstantSamples(Collector):
    """``count`` gauge samples with nothing computed: only prometheus-client's rendering."""

    def __init__(self, count: int, per_family: int = 200) -> None:
        self.count = count
        self.per_family = per_family

    def collect(self) -> Iterator[Metric]:
        left, family = self.count, 0
        while left > 0:
            metric = Metric(f"floor_metric_{family}", "A constant.", "gauge")
            for i in range(min(left, self.per_family)):
                metric.add_sample(metric.name, {"target": f"t{i:03d}"}, 1.0)
            left -= self.per_family
            family += 1
            yield metric


def samples_app(count: int) -> Callable[..., Iterable[bytes]]:
    registry = CollectorRegistry()
    registry.register(ConstantSamples(count))
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return metrics(environ, start_response)

    return app


def main() -> None:
    port, what, *rest = sys.argv[1:]
    if what == "--constant":
        app = constant_app(int(rest[0]))
    elif what == "--samples":
        app = samples_app(int(rest[0]))
    else:
        app = scan_per_scrape_app(Path(what), "tree" in rest)
    server = HttpServer(app, "127.0.0.1", int(port))
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
