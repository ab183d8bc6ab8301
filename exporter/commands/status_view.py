"""`backup-monitor status`: a running daemon's status document as a terminal table."""

from __future__ import annotations

from typing import Any

import click

from exporter.commands.exitcodes import STATE_EXIT, Exit
from exporter.units import printable

_COLOURS = {"ok": "green", "failing": "yellow", "down": "red"}


def exit_code_for(document: dict[str, Any]) -> Exit:
    return STATE_EXIT.get(document.get("state", "down"), Exit.UNREADABLE)


def render_status(document: dict[str, Any], color: bool) -> str:
    header = ("TARGET", "STATE", "NEWEST", "AGE / MAX", "SIZE", "COUNT", "VERIFIED", "FAILING")
    rows = [header]
    for target in document["targets"]:
        newest = target["newest"]
        limit = target["max_age"] or target["schedule"] or ""
        verification = target["verification"]
        rows.append(
            tuple(
                printable(cell)
                for cell in (
                    target["name"],
                    target["state"],
                    newest["name"] if newest else (target["error"] or "none"),
                    f"{newest['age'] if newest else 'never'} / {limit}",
                    newest["size"] if newest else "",
                    str(target["count"]),
                    "-" if verification is None else ("ok" if verification["ok"] else "FAILED"),
                    ", ".join(c["name"] for c in target["checks"] if not c["ok"]) or "-",
                )
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [value.ljust(widths[i]) for i, value in enumerate(row)]
        if color and index:
            cells[1] = click.style(cells[1], fg=_COLOURS.get(row[1]), bold=True)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
