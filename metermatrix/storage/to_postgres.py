"""``metermatrix migrate``: copy a data folder's SQLite database into PostgreSQL.

The copy runs in steps, each one transaction on the target: the meters, the accounts,
each day's packed readings, each day's totals, and the closed days with their region
figures. A finished step is recorded in the target (``migration_steps``, by the source's
database id), so a migration stopped half way (a crash, Ctrl-C) carries on where it
stopped when run again; every step writes with ``ON CONFLICT`` and can be repeated. At
the end the row counts and the energy of both databases are compared. Stop the server
before migrating: readings it stores meanwhile would miss the copy.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from metermatrix.storage.packing import day_of_number
from metermatrix.storage.postgres import PostgresStorage
from metermatrix.storage.sqlite import SQLiteStorage

log = logging.getLogger(__name__)

#: (what is counted, SQL run on both databases).
CHECKS = [
    ("meters", "SELECT COUNT(*) FROM meters"),
    ("residents", "SELECT COUNT(*) FROM residents"),
    ("managers", "SELECT COUNT(*) FROM managers"),
    ("meter-days of readings", "SELECT COUNT(*) FROM day_readings"),
    ("daily totals", "SELECT COUNT(*) FROM daily_totals"),
    ("energy of the daily totals [Wh]", "SELECT COALESCE(SUM(energy_wh), 0) FROM daily_totals"),
    ("closed days", "SELECT COUNT(*) FROM closed_days"),
    ("region days", "SELECT COUNT(*) FROM region_daily"),
]
_STEPS = """CREATE TABLE IF NOT EXISTS migration_steps (
    source text NOT NULL, step text NOT NULL, done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, step))"""
_CHUNK = 50_000


class MigrationError(RuntimeError):
    """The copy's counts differ from the source's."""


@dataclass
class MigrationReport:
    """What a migration did: steps run now and before, and the counts of both sides."""

    steps_done: int = 0
    steps_skipped: int = 0
    counts: list[tuple[str, int, int]] | None = None
    finished: bool = False


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := [row for _, row in zip(range(_CHUNK), rows, strict=False)]:
        yield chunk


class _Copy:
    """One migration from a SQLite file into a PostgreSQL database."""

    def __init__(self, source: sqlite3.Connection, target: PostgresStorage) -> None:
        self.source, self.target, self.db = source, target, target._db
        (self.source_id,) = source.execute(
            "SELECT value FROM meta WHERE key = 'database_id'").fetchone()
        self.db.execute(_STEPS)
        self.done = {step for (step,) in self.db.execute(
            "SELECT step FROM migration_steps WHERE source = %s", (self.source_id,))}

    def steps(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """Every step of the copy, in order: (name, function)."""
        yield "meters", self._meters
        yield "accounts", self._accounts
        for (number,) in self.source.execute(
                "SELECT DISTINCT day FROM day_readings ORDER BY day").fetchall():
            yield f"readings {day_of_number(number)}", partial(self._readings, number)
        for (number,) in self.source.execute(
                "SELECT DISTINCT day FROM daily_totals ORDER BY day").fetchall():
            yield f"totals {day_of_number(number)}", partial(self._totals, number)
        yield "closed days", self._days

    def run_step(self, name: str, function: Callable[[], None]) -> None:
        """One step and its record, in one transaction."""
        with self.target.transaction():
            function()
            self.db.execute("INSERT INTO migration_steps (source, step) VALUES (%s, %s)"
                            " ON CONFLICT DO NOTHING", (self.source_id, name))

    def _copy(self, table: str, columns: str, rows: Iterable[tuple[Any, ...]],
              conflict: str) -> None:
        """COPY rows into a staging copy of ``table``, then insert them with ``conflict``."""
        stage = f"staged_{table}"
        self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table})"
                        " ON COMMIT DELETE ROWS")
        with self.db.cursor() as cursor:
            with cursor.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}"
                           f" {conflict}")
            cursor.execute(f"TRUNCATE {stage}")

    def _meters(self) -> None:
        rows = self.source.execute("SELECT meter_id, name, fin_no, region, created_at"
                                   " FROM meters ORDER BY meter_id")
        for chunk in _chunks(iter(rows)):
            self._copy("meters", "meter_id, name, fin_no, region, created_at", chunk,
                       "ON CONFLICT (meter_id) DO UPDATE SET name = excluded.name,"
                       " fin_no = excluded.fin_no, region = excluded.region")

    def _accounts(self) -> None:
        self._copy("residents", "meter_id, password_hash, created_at", self.source.execute(
            "SELECT meter_id, password_hash, created_at FROM residents"),
            "ON CONFLICT (meter_id) DO UPDATE SET password_hash = excluded.password_hash")
        self._copy("managers", "username, password_hash, created_at", self.source.execute(
            "SELECT username, password_hash, created_at FROM managers"),
            "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash")

    def _readings(self, number: int) -> None:
        self.target._ensure_month(number)
        rows = self.source.execute("SELECT meter_id, day, slots_wh, marks FROM day_readings"
                                   " WHERE day = ?", (number,))
        for chunk in _chunks(iter(rows)):
            self._copy("day_readings", "meter_id, day, slots_wh, marks", chunk,
                       "ON CONFLICT (meter_id, day) DO UPDATE SET slots_wh = excluded.slots_wh,"
                       " marks = excluded.marks")

    def _totals(self, number: int) -> None:
        self.target._ensure_month(number)
        rows = self.source.execute("SELECT meter_id, day, energy_wh, readings FROM daily_totals"
                                   " WHERE day = ?", (number,))
        for chunk in _chunks(iter(rows)):
            self._copy("daily_totals", "meter_id, day, energy_wh, readings", chunk,
                       "ON CONFLICT (meter_id, day) DO UPDATE SET energy_wh ="
                       " excluded.energy_wh, readings = excluded.readings")

    def _days(self) -> None:
        for table, columns, key in (
                ("region_daily", "region, day, energy_wh, meters, readings", "region, day"),
                ("region_slots", "region, day, slots_wh, readings", "region, day"),
                ("closed_days", "day, closed_at", "day")):
            rows = self.source.execute(f"SELECT {columns} FROM {table}")
            updates = ", ".join(f"{column} = excluded.{column}" for column in
                                columns.split(", ") if column not in key.split(", "))
            self._copy(table, columns, rows, f"ON CONFLICT ({key}) DO UPDATE SET {updates}")

    def counts(self) -> list[tuple[str, int, int]]:
        """(what, in the source, in the target) for every check."""
        found = []
        for what, sql in CHECKS:
            (source,) = self.source.execute(sql).fetchone()
            row = self.db.execute(sql).fetchone()
            found.append((what, int(source), int(row[0]) if row else 0))
        return found


def migrate_to_postgres(data_dir: Path, url: str, max_steps: int | None = None,
                        progress: Callable[[str], None] = log.info) -> MigrationReport:
    """Copy ``data_dir``'s SQLite database into PostgreSQL at ``url``, resuming a copy
    stopped earlier; raises MigrationError when the counts at the end differ.

    ``max_steps`` stops after that many steps (as an interruption would).
    """
    path = data_dir / "metermatrix.sqlite3"
    if not path.is_file():
        raise FileNotFoundError(f"no master database in {data_dir} (wrong --from?)")
    SQLiteStorage(path).close()  # brings an old data folder to the current schema first
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = PostgresStorage(url)
    report = MigrationReport()
    try:
        copy = _Copy(source, target)
        for name, function in copy.steps():
            if name in copy.done:
                report.steps_skipped += 1
                continue
            if max_steps is not None and report.steps_done >= max_steps:
                return report
            copy.run_step(name, function)
            report.steps_done += 1
            progress(f"copied {name}")
        report.counts = copy.counts()
        report.finished = True
    finally:
        source.close()
        target.close()
    differ = [f"{what}: {a} in {data_dir}, {b} in PostgreSQL"
              for what, a, b in report.counts if a != b]
    if differ:
        raise MigrationError("the copy differs from the source: " + "; ".join(differ))
    return report
