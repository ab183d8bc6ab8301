"""Restore drills: restore a backup for real, in a scratch directory, and compare it with
the live database.

A drill copies the backup into a private directory under ``scratch_dir`` (refused when
there is less than twice its size free), decompresses it on the way (gzip, bzip2, xz,
zstd), opens the copy read-write as a restore would, runs ``PRAGMA integrity_check``, the
foreign key check and the configured queries, then compares it with the live database,
opened strictly read-only (``mode=ro``, never ``immutable``: the live file has writers;
a busy timeout; one read transaction, so the counts are one consistent moment). The
scratch copy is deleted whatever happened. The backup itself is only ever read.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from exporter.config import DrillConfig
from exporter.statefile import Record, RecordBook
from exporter.units import humanize_size, printable
from exporter.verify.content import (
    CHUNK,
    SQLITE_MAGIC,
    Budget,
    VerifyError,
    bounded,
    compression_of,
    open_decompressed,
    open_regular,
    room_in,
    sqlite_uri,
)

# The live database is busy with its own writers: wait this long for a lock, no longer.
BUSY_TIMEOUT = 5.0
# Tables shown in a result (the worst ratios first); every table is still compared.
TABLES_SHOWN = 50


class DrillFailed(Exception):
    """The drill's verdict: the backup does not restore into what the live database holds."""


@dataclass(frozen=True, slots=True)
class TableCount:
    name: str
    restored: int
    live: int | None  # None: no live database to compare with

    @property
    def ratio(self) -> float | None:
        if self.live is None:
            return None
        return 1.0 if self.live == 0 else self.restored / self.live


@dataclass(frozen=True, slots=True)
class DrillResult:
    """One drill: what was restored, how long each phase took, and the verdict."""

    backup: str
    backup_timestamp: float
    ok: bool
    reason: str
    started_at: float
    duration: float
    phases: dict[str, float] = field(default_factory=dict)  # copy, restore, queries, compare
    tables: tuple[TableCount, ...] = ()


def _connect(path: str, read_only: bool) -> sqlite3.Connection:
    if read_only:
        uri = sqlite_uri(path, "mode=ro")  # never immutable: the live file has writers
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, check_same_thread=False)
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False)


def _interruptible(
    conn: sqlite3.Connection, budget: Budget
) -> contextlib.AbstractContextManager[sqlite3.Connection]:
    return bounded(conn, budget, "drill", DrillFailed, DrillFailed)


def _free(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _copy(backup: str, copy: str, budget: Budget, room: int) -> None:
    """The backup, decompressed if it is compressed, as a database file at ``copy``."""
    with open_regular(backup) as raw:
        head = raw.read(512)
    compression = compression_of(head)
    source = open_decompressed(backup, compression) if compression else open_regular(backup)
    written = 0
    try:
        with source, open(copy, "xb") as out:
            while True:
                budget.check()
                try:
                    chunk = source.read(CHUNK)
                except (OSError, EOFError) as exc:
                    raise DrillFailed(f"cannot decompress: {exc}") from None
                if not chunk:
                    break
                written += len(chunk)
                if written > room:
                    raise DrillFailed("scratch directory full while restoring")
                out.write(chunk)
    except VerifyError as exc:
        raise DrillFailed(str(exc)) from None
    with open(copy, "rb") as restored:
        if restored.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise DrillFailed("not a SQLite database once restored")


def _restore_checks(conn: sqlite3.Connection) -> None:
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    if [tuple(r) for r in rows] != [("ok",)]:
        raise DrillFailed("integrity_check: " + "; ".join(str(r[0]) for r in rows[:3]))
    broken = conn.execute("PRAGMA foreign_key_check").fetchmany(3)
    if broken:
        tables = ", ".join(sorted({str(r[0]) for r in broken}))
        raise DrillFailed(f"foreign key violations in {tables}")


def _queries(conn: sqlite3.Connection, config: DrillConfig) -> None:
    for query in config.queries:
        cursor = conn.execute(query.sql)
        if query.rows_min is not None:
            got = len(cursor.fetchmany(query.rows_min))
            if got < query.rows_min:
                raise DrillFailed(f"{query.sql}: {got} rows (min {query.rows_min})")
            continue
        row = cursor.fetchone()
        if row is None:
            raise DrillFailed(f"{query.sql}: no row")
        value = row[0]
        if query.min is not None or query.max is not None:
            if not isinstance(value, int | float):
                raise DrillFailed(f"{query.sql}: {value!r} is not a number")
            if query.min is not None and value < query.min:
                raise DrillFailed(f"{query.sql}: {value:g} (min {query.min:g})")
            if query.max is not None and value > query.max:
                raise DrillFailed(f"{query.sql}: {value:g} (max {query.max:g})")


def _tables(conn: sqlite3.Connection) -> dict[str, str]:
    """User tables and their normalized definitions (sqlite_* are SQLite's own)."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {name: " ".join((sql or "").split()) for name, sql in rows}


def _count(conn: sqlite3.Connection, table: str) -> int:
    quoted = '"' + table.replace('"', '""') + '"'
    return int(conn.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0])  # noqa: S608 - a quoted table name


def _compare(
    restored: sqlite3.Connection, live_path: str | None, min_ratio: float, budget: Budget
) -> tuple[TableCount, ...]:
    ours = _tables(restored)
    if live_path is None:
        return tuple(TableCount(name, _count(restored, name), None) for name in sorted(ours))
    if not os.path.isfile(live_path):
        raise DrillFailed(f"live database {printable(live_path)} not found")
    with _interruptible(_connect(live_path, True), budget) as live:
        live.execute("BEGIN")  # one snapshot of the live database for every count
        theirs = _tables(live)
        live_counts = {name: _count(live, name) for name in theirs}
        live.execute("COMMIT")
    missing = sorted(set(theirs) - set(ours))
    if missing:
        raise DrillFailed("tables missing from the backup: " + ", ".join(missing[:10]))
    differ = sorted(name for name in theirs if theirs[name] != ours[name])
    if differ:
        raise DrillFailed("schema differs from the live database: " + ", ".join(differ[:10]))
    counts = tuple(
        TableCount(name, _count(restored, name), live_counts.get(name)) for name in sorted(ours)
    )
    short = sorted(
        (c for c in counts if c.ratio is not None and c.ratio < min_ratio),
        key=lambda c: c.ratio or 0.0,
    )
    if short:
        worst = short[0]
        raise DrillFailed(
            f"{worst.name}: {worst.restored} rows restored, {worst.live} live "
            f"({(worst.ratio or 0.0) * 100:.0f}%, min {min_ratio * 100:.0f}%)"
            + (f"; {len(short) - 1} more tables short" if len(short) > 1 else ""),
            counts,
        )
    return counts


class _Phases:
    """How long each phase of a drill took (the one it failed in included)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def begin(self, label: str) -> None:
        self.end()
        self._current = (label, time.monotonic())

    def end(self) -> None:
        if self._current is not None:
            label, since = self._current
            self.times[label] = time.monotonic() - since
            self._current = None


def run_drill(
    backup: str,
    backup_timestamp: float,
    config: DrillConfig,
    scratch_dir: str,
    clock: Callable[[], float] = time.time,
) -> DrillResult:
    """Restore ``backup`` into ``scratch_dir`` and judge it; never raises for the backup's
    or the scratch directory's sake (those are a failed drill with its reason)."""
    started, began = clock(), time.monotonic()
    budget = Budget(config.timeout, 2**62)
    phases = _Phases()
    tables: tuple[TableCount, ...] = ()
    name = os.path.basename(backup)
    try:
        os.makedirs(scratch_dir, mode=0o700, exist_ok=True)
        size = os.stat(backup).st_size
        free = _free(scratch_dir)
        if free < 2 * size:
            raise DrillFailed(
                f"scratch directory {printable(scratch_dir)} has {humanize_size(free)} free; "
                f"a drill of {humanize_size(size)} needs twice that"
            )
        # A directory of its own: two drills never share a copy, and it goes as a whole.
        workdir = tempfile.mkdtemp(prefix="drill-", dir=scratch_dir)
        try:
            copy = os.path.join(workdir, "restored.db")
            phases.begin("copy")
            _copy(backup, copy, budget, room_in(workdir))
            phases.begin("restore")
            with _interruptible(_connect(copy, False), budget) as conn:
                _restore_checks(conn)
                phases.begin("queries")
                _queries(conn, config)
                phases.begin("compare")
                tables = _compare(conn, config.live, config.min_ratio, budget)
        finally:
            phases.end()  # a phase that failed is timed too
            shutil.rmtree(workdir, ignore_errors=True)
    except DrillFailed as exc:
        if len(exc.args) > 1:
            tables = exc.args[1]
        return DrillResult(
            name,
            backup_timestamp,
            False,
            str(exc.args[0]),
            started,
            time.monotonic() - began,
            phases.times,
            tables,
        )
    except OSError as exc:
        reason = f"{printable(exc.filename or name)}: {exc.strerror or exc}"
        return DrillResult(
            name, backup_timestamp, False, reason, started, time.monotonic() - began, phases.times
        )
    restored = sum(t.restored for t in tables)
    reason = f"restored {name}: {len(tables)} tables, {restored} rows"
    if config.live is not None:
        reason += " (matching the live database)"
    return DrillResult(
        name,
        backup_timestamp,
        True,
        reason,
        started,
        time.monotonic() - began,
        phases.times,
        tables,
    )


@dataclass(frozen=True, slots=True)
class DrillStatus:
    """A target's drills: the latest round (one result per picked backup) and counts."""

    version: int = 0
    since: float = 0.0  # when drills began for the target: the first window's start
    ran_at: float | None = None
    results: tuple[DrillResult, ...] = ()
    last_success_at: float | None = None
    successes: int = 0
    failures: int = 0

    @property
    def ok(self) -> bool | None:
        return all(r.ok for r in self.results) if self.results else None


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Table(_Shape):
    name: str
    restored: int = Field(ge=0)
    live: int | None = Field(default=None, ge=0)


class _Result(_Shape):
    backup: str
    backup_timestamp: float
    ok: bool
    reason: str = Field(max_length=10_000)
    started_at: float
    duration: float = Field(ge=0)
    phases: dict[str, float] = Field(default_factory=dict, max_length=10)
    tables: list[_Table] = Field(default_factory=list, max_length=100_000)


class _DrillFile(_Shape):
    since: float = Field(gt=0)
    ran_at: float | None = None
    results: list[_Result] = Field(default_factory=list, max_length=10)
    last_success_at: float | None = None
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)


def _table(shape: _Table) -> TableCount:
    return TableCount(**shape.model_dump())


class DrillRecord(Record[DrillStatus]):
    """A target's drill results, saved at every change: a restart neither loses the last
    result nor runs a drill again before it is due."""

    kind = "drill record"
    # The first window ("a success within two periods") starts when drills are configured,
    # and a restart must not move it: a new record is saved at once.
    saved_when_new = True

    def empty(self) -> DrillStatus:
        return DrillStatus(since=self.clock())

    def loaded(self, document: dict[str, Any]) -> DrillStatus:
        shape = _DrillFile.model_validate(document)
        results = tuple(
            DrillResult(
                **{
                    **r.model_dump(),
                    "tables": tuple(TableCount(**t.model_dump()) for t in r.tables),
                }
            )
            for r in shape.results
        )
        return DrillStatus(
            since=shape.since,
            ran_at=shape.ran_at,
            results=results,
            last_success_at=shape.last_success_at,
            successes=shape.successes,
            failures=shape.failures,
        )

    def add_round(self, results: Sequence[DrillResult], at: float | None = None) -> DrillStatus:
        """A drill round ended (one result per backup picked)."""
        at = self.clock() if at is None else at

        def edit(status: DrillStatus) -> DrillStatus:
            ok = all(r.ok for r in results)
            return replace(
                status,
                ran_at=at,
                results=tuple(results),
                last_success_at=at if ok else status.last_success_at,
                successes=status.successes + ok,
                failures=status.failures + (not ok),
            )

        return self._change(edit)


def drill_book(
    state_dir: str | None,
    clock: Callable[[], float] = time.time,
    on_change: Callable[[str], None] | None = None,
    writable: bool = True,
) -> RecordBook[DrillRecord]:
    """The daemon's drill records by target name, in ``state_dir/drills/``."""
    return RecordBook(DrillRecord, state_dir, "drills", clock, on_change, writable)


def scratch_dir(config: DrillConfig, state_dir: str, target: str) -> str:
    return config.scratch_dir or os.path.join(state_dir, "drills", target)


def pick_backups(
    files: Mapping[str, tuple[int, float]], newest: str, pick: Sequence[str]
) -> list[tuple[str, float]]:
    """(name, timestamp) of the backups a drill restores: the newest complete one, and
    with ``random`` one older backup chosen at random (a different point in time)."""
    chosen = [(newest, files[newest][1])]
    if "random" in pick:
        older = sorted(name for name, (_, ts) in files.items() if ts < files[newest][1])
        if older:
            name = random.choice(older)  # noqa: S311 - a sample, not a secret
            chosen.append((name, files[name][1]))
    return chosen
