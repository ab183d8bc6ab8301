"""A demo backup directory for ``make run``: real SQLite backups, the newest one fresh."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

NAME_FORMAT = "backup-%Y-%m-%d-%H-%M-%S.db"


def make_demo_backups(directory: Path, count: int = 5, now: float | None = None) -> list[Path]:
    """Nightly backups for the last ``count`` days plus one from a minute ago.

    A directory that already holds demo backups is kept as it is, but for its newest
    backup, made a minute old again: re-running ``make run`` adds no files.
    """
    now = time.time() if now is None else now
    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(directory.glob("backup-*.db"), key=lambda p: p.stat().st_mtime)
    if existing:
        os.utime(existing[-1], (now - 60, now - 60))
        return existing
    stamps = [now - 60] + [now - day * 86400 for day in range(1, count)]
    paths = []
    for stamp in stamps:
        path = directory / time.strftime(NAME_FORMAT, time.localtime(stamp))
        _write_database(path)
        os.utime(path, (stamp, stamp))
        paths.append(path)
    return paths


def _write_database(path: Path) -> None:
    # closing() closes; the connection's own context manager only commits.
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE api_keys (id INTEGER PRIMARY KEY, key TEXT, quota INTEGER)")
        db.executemany(
            "INSERT INTO api_keys (key, quota) VALUES (?, ?)",
            [(f"demo-key-{i:04d}", 1000 + i) for i in range(200)],
        )
