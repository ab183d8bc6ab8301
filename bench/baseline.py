"""The scan-per-scrape baseline: an exporter that lists the directory at every scrape,
as glob-at-scrape exporters do. Run as a child process: python -m bench.baseline DIR PORT [tree]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from exporter.http import HttpServer
from exporter.matcher import Matcher
from exporter.scan import scan_target

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


def main() -> None:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    server = HttpServer(scan_per_scrape_app(root, "tree" in sys.argv[3:]), "127.0.0.1", port)
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
