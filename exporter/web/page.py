"""The status page at /: one self-contained HTML file (no CDN, works offline).

It fetches /api/v1/targets every 10 seconds and updates the table in place (no
reload, no flicker). Everything from the API is inserted as text, never as HTML.
"""

from __future__ import annotations

import html
from importlib import resources


def render_page(version: str, metrics_path: str, refresh_seconds: float = 10.0) -> bytes:
    page = resources.files("exporter").joinpath("web/static/status.html").read_text("utf-8")
    return (
        page.replace("__VERSION__", html.escape(version))
        .replace("__METRICS__", html.escape(metrics_path.lstrip("/")))
        .replace("__REFRESH_MS__", str(int(refresh_seconds * 1000)))
        .encode()
    )
