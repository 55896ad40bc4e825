"""Upgrading a data folder's database in place to the current schema (PRAGMA user_version).

Version 1 (release 0.1.0, user_version 0) kept one row per reading in ``readings`` and
daily totals keyed (meter_id, day text). Version 2 packs a meter's day into one row of
``day_readings`` and keys the large tables by (day number, meter_id). The upgrade runs
in steps that can be repeated: a crash half way is finished on the next start. Version 3
keeps each meter's first day with data in ``meters.first_day`` (a trigger on
``day_readings``, and the writers of totals without readings); upgrading fills it from
the tables in one transaction. Version 4 keeps each closed day's totals as columns too
(``day_total_columns``, storage/totalcolumns.py) and drops the (day, energy_wh) index of
``daily_totals``; upgrading writes the columns of every closed day, a day per transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import date

import numpy as np

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.packing import (
    ALL_ON_TIME,
    MISSING,
    day_number,
    pack_rows,
)

log = logging.getLogger(__name__)

#: The schema this release writes.
SCHEMA_VERSION = 4


def _tables(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def migrate_if_needed(db: sqlite3.Connection, create_schema: Callable[[], None]) -> None:
    """Bring the database to SCHEMA_VERSION, then make sure every table exists."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {version} is newer than this release "
                           f"({SCHEMA_VERSION}); upgrade MeterMatrix")
    tables = _tables(db)
    if "meters" in tables:
        _add_first_day_column(db)
    if version == 0 and ("readings" in tables or "v1_readings" in tables):
        _rename_version_1(db, tables)
        create_schema()
        _convert_version_1(db)
    create_schema()
    if version < 3:
        _fill_first_days(db)
    if version < 4:
        _fill_total_columns(db)
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _add_first_day_column(db: sqlite3.Connection) -> None:
    """Give an older ``meters`` table its ``first_day`` column (schema.sql indexes it)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(meters)")}
    if "first_day" not in columns:
        db.execute("ALTER TABLE meters ADD COLUMN first_day INTEGER")


def _fill_first_days(db: sqlite3.Connection) -> None:
    """Set every meter's first day from the rows already stored: one transaction (from
    then on the trigger on day_readings and the writers of totals without readings keep
    it)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("""UPDATE meters SET first_day = found.day FROM (
                        SELECT meter_id, MIN(day) AS day FROM (
                          SELECT meter_id, day FROM day_readings
                          UNION ALL SELECT meter_id, day FROM daily_totals)
                        GROUP BY meter_id) AS found
                      WHERE meters.meter_id = found.meter_id""")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _fill_total_columns(db: sqlite3.Connection) -> None:
    """Write the totals columns of every closed day that has none, a day per transaction
    (an interrupted upgrade goes on where it stopped)."""
    from metermatrix.storage.totalcolumns import TotalColumns

    class _Columns(TotalColumns):
        def __init__(self, connection: sqlite3.Connection) -> None:
            self._db = connection

    columns = _Columns(db)
    done = {number for (number,) in db.execute("SELECT day FROM day_total_columns")}
    days = sorted({day_number(date.fromisoformat(text))
                   for (text,) in db.execute("SELECT day FROM closed_days")} - done)
    for number in days:
        db.execute("BEGIN IMMEDIATE")
        try:
            columns._write_total_columns(number)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    if days:
        log.info("database upgraded to schema %d: totals columns of %d closed days written",
                 SCHEMA_VERSION, len(days))


def _rename_version_1(db: sqlite3.Connection, tables: set[str]) -> None:
    """Step 1: move the version-1 tables aside (their names are reused)."""
    if "readings" not in tables:
        return  # done by an earlier, interrupted upgrade
    log.info("upgrading the database from schema 1 to %d", SCHEMA_VERSION)
    db.execute("BEGIN IMMEDIATE")
    db.execute("ALTER TABLE readings RENAME TO v1_readings")
    db.execute("ALTER TABLE daily_totals RENAME TO v1_daily_totals")
    db.execute("DROP INDEX IF EXISTS readings_day")
    db.execute("DROP INDEX IF EXISTS daily_totals_day")
    db.execute("COMMIT")


def _convert_version_1(db: sqlite3.Connection) -> None:
    """Step 2, one transaction: pack the readings, re-key the totals, drop the old tables."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM day_readings")
        days = [date.fromisoformat(day) for (day,) in
                db.execute("SELECT DISTINCT day FROM v1_readings ORDER BY day")]
        for day in days:
            _pack_day(db, day)
        db.execute("DELETE FROM daily_totals")
        db.execute("""INSERT INTO daily_totals (day, meter_id, energy_wh, readings)
                      SELECT CAST(julianday(day) - julianday('1970-01-01') AS INTEGER),
                             meter_id, energy_wh, readings FROM v1_daily_totals""")
        _fill_region_slots(db)
        db.execute("DROP TABLE v1_readings")
        db.execute("DROP TABLE v1_daily_totals")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    log.info("database upgraded to schema %d: %d days of readings packed",
             SCHEMA_VERSION, len(days))


def _pack_day(db: sqlite3.Connection, day: date) -> None:
    rows = np.array(db.execute(
        "SELECT meter_id, slot, energy_wh FROM v1_readings WHERE day = ?",
        (day.isoformat(),)).fetchall(), dtype=np.int64).reshape(-1, 3)
    ids, row_of = np.unique(rows[:, 0], return_inverse=True)
    values = np.full((len(ids), SLOTS_PER_DAY), MISSING, np.uint16)
    values[row_of, rows[:, 1]] = rows[:, 2]
    number = day_number(day)
    db.executemany(
        "INSERT INTO day_readings (day, meter_id, slots_wh, marks) VALUES (?, ?, ?, ?)",
        ((number, int(m), blob, ALL_ON_TIME)
         for m, blob in zip(ids.tolist(), pack_rows(values), strict=True)))


def _fill_region_slots(db: sqlite3.Connection) -> None:
    """Per-region half-hour sums of every closed day, from the packed rows."""
    from metermatrix.storage.sqlite_days import DayTables  # the same code as the close

    class _Days(DayTables):
        def __init__(self, connection: sqlite3.Connection) -> None:
            self._db = connection

        def day_matrix(self, day: date) -> tuple[np.ndarray, np.ndarray]:
            rows = self._db.execute(
                "SELECT meter_id, slots_wh FROM day_readings WHERE day = ? ORDER BY meter_id",
                (day_number(day),)).fetchall()
            ids = np.array([m for m, _ in rows], dtype=np.int64)
            blobs = b"".join(b for _, b in rows)
            return ids, np.frombuffer(blobs, "<u2").reshape(-1, SLOTS_PER_DAY)

    days = _Days(db)
    for (text,) in db.execute("SELECT day FROM closed_days").fetchall():
        day = date.fromisoformat(text)
        ids, values = days.day_matrix(day)
        db.execute("DELETE FROM region_slots WHERE day = ?", (text,))
        for region, (sums, counts) in days._region_slot_sums(ids, values).items():
            db.execute("INSERT INTO region_slots (region, day, slots_wh, readings)"
                       " VALUES (?, ?, ?, ?)",
                       (region, text, sums.astype("<i8").tobytes(),
                        counts.astype("<i4").tobytes()))
