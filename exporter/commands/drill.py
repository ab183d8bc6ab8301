"""``backup-monitor drill``: one restore drill now, printed as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from exporter.units import printable
from exporter.verify.drill import DrillResult

PHASES = ("copy", "restore", "queries", "compare")


def result_document(result: DrillResult) -> dict[str, Any]:
    return {
        "backup": result.backup,
        "backup_timestamp": result.backup_timestamp,
        "ok": result.ok,
        "reason": result.reason,
        "duration_seconds": result.duration,
        "phases": dict(result.phases),
        "tables": [{"name": t.name, "restored": t.restored, "live": t.live} for t in result.tables],
    }


def render_json(results: Sequence[DrillResult]) -> str:
    document = {"ok": all(r.ok for r in results), "results": [result_document(r) for r in results]}
    return json.dumps(document, indent=2) + "\n"


def render_table(results: Sequence[DrillResult]) -> str:
    lines: list[str] = []
    for result in results:
        lines.append(f"backup   {printable(result.backup)}")
        timings = "  ".join(
            f"{name} {result.phases[name]:.2f}s" for name in PHASES if name in result.phases
        )
        lines.append(f"phases   {timings or '-'}  (total {result.duration:.2f}s)")
        if result.tables:
            width = max(len(t.name) for t in result.tables)
            lines.append(f"{'table'.ljust(width)}  {'restored':>10}  {'live':>10}  ratio")
            for table in result.tables:
                live = "-" if table.live is None else str(table.live)
                ratio = "-" if table.ratio is None else f"{table.ratio * 100:.0f}%"
                name = printable(table.name).ljust(width)
                lines.append(f"{name}  {table.restored:>10}  {live:>10}  {ratio}")
        verdict = "PASS" if result.ok else "FAIL"
        lines.append(f"{verdict}     {printable(result.reason)}")
        lines.append("")
    return "\n".join(lines)
