"""The dashboard benchmark's large data folders, built fast in key order.

``build_database`` makes ``days`` closed days of daily totals and region totals, with the
packed half-hourly rows of yesterday and today only. ``build_city_database`` makes what
the server would have after ``days`` closed days of ``meters`` meters: every meter's
packed half-hourly rows of each closed day and of today so far, the daily totals summed
from those rows, ``region_daily`` and ``region_slots`` summed per region from the same
rows, the closed days, and each meter's first day. Both write each closed day's totals
as columns too (``day_total_columns``), as the close does. The rows are written with
executemany a day at a time in (day, meter_id) order, the first-day triggers set aside
during the build (the meters are written with their first day; the server puts the
triggers back when it opens the folder). About 1.4 M meters x 30 days: 42 M rows of each
large table, some 6 GB of disk.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import insert_daily_totals, insert_day_rows  # noqa: E402
from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD, hash_password  # noqa: E402
from metermatrix.fleet import REGIONS, synthetic_fleet  # noqa: E402
from metermatrix.slots import SLOTS_PER_DAY, slots_elapsed  # noqa: E402
from metermatrix.storage import MeterRecord, open_storage  # noqa: E402
from metermatrix.storage.packing import (  # noqa: E402
    ALL_ON_TIME,
    MISSING,
    day_number,
    group_slot_sums,
    pack_rows,
    row_totals,
)
from metermatrix.storage.totalcolumns import encode_values  # noqa: E402


def clock_offset_s(local_time: str, tz: ZoneInfo) -> float:
    """Seconds to add to the real clock so that it reads ``local_time`` (HH:MM) today in
    ``tz``: the large run is measured at the same hour whenever it runs."""
    now = datetime.now(tz)
    hours, minutes = (int(part) for part in local_time.split(":"))
    return (now.replace(hour=hours, minute=minutes, second=0, microsecond=0) - now).total_seconds()


def build_database(data_dir: Path, meters: int, days: int, tz: ZoneInfo, seed: int,
                   offset_s: float = 0.0) -> dict[str, int]:
    """Fill ``data_dir``: meters and the manager login, ``days`` closed days of totals,
    yesterday's and today's readings so far; returns row counts."""
    fleet = synthetic_fleet(meters, seed)
    ids = np.array([meter.meter_id for meter in fleet], dtype=np.int64)
    now = datetime.now(UTC) + timedelta(seconds=offset_s)
    today = now.astimezone(tz).date()
    storage = open_storage(data_dir)
    with storage.transaction():
        for meter in fleet:
            storage.save_meter(MeterRecord(meter.meter_id, meter.name, meter.fin_no,
                                           meter.region))
        storage.set_manager(DEMO_MANAGER, hash_password(DEMO_PASSWORD))
    storage.close()
    rng = np.random.default_rng(seed)
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3", isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -400000")
    history = [today - timedelta(days=back) for back in range(days, 0, -1)]
    daily_wh = rng.lognormal(np.log(9000), 0.5, size=(len(ids), len(history))).astype(np.int64)
    insert_totals(db, ids, history, daily_wh)
    for day, slots in ((history[-1], SLOTS_PER_DAY), (today, slots_elapsed(today, now, tz))):
        insert_readings(db, ids, day, rng.integers(20, 900, size=(len(ids), slots)))
    counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("meters", "daily_totals", "region_daily", "day_readings")}
    db.close()
    return counts


def insert_readings(db: sqlite3.Connection, meter_ids: np.ndarray, day: date,
                    energy_wh: np.ndarray) -> None:
    """The (meters x slots) readings of one day, in one transaction."""
    db.execute("BEGIN")
    insert_day_rows(db, meter_ids.tolist(), day, energy_wh)
    db.execute("COMMIT")


def insert_totals(db: sqlite3.Connection, meter_ids: np.ndarray, days: list[date],
                  energy_wh: np.ndarray) -> None:
    """Daily totals meter by meter (key order), then region totals and closed days by SQL."""
    texts = [day.isoformat() for day in days]
    db.execute("BEGIN")
    insert_daily_totals(db, meter_ids.tolist(), days, energy_wh, SLOTS_PER_DAY)
    db.execute("""INSERT INTO region_daily (region, day, energy_wh, meters, readings)
                  SELECT COALESCE(m.region, 'Unassigned'),
                         date(t.day * 86400, 'unixepoch'), SUM(t.energy_wh), COUNT(*),
                         SUM(t.readings)
                  FROM daily_totals t LEFT JOIN meters m USING (meter_id) GROUP BY 1, 2""")
    db.executemany("INSERT INTO closed_days (day, closed_at) VALUES (?, ?)",
                   [(text, datetime.now(UTC).isoformat(timespec="seconds")) for text in texts])
    for day in days:
        number = day_number(day)
        rows = np.array(db.execute("SELECT meter_id, energy_wh, readings FROM daily_totals"
                                   " WHERE day = ?", (number,)).fetchall(), np.int64)
        rows = rows.reshape(-1, 3)
        _total_columns(db, number, rows[:, 0], rows[:, 1], rows[:, 2])
    db.execute("COMMIT")


def _total_columns(db: sqlite3.Connection, number: int, ids: np.ndarray, energy: np.ndarray,
                   readings: np.ndarray) -> None:
    """A closed day's totals as columns (``day_total_columns``), as the close writes them."""
    order = np.argsort(ids, kind="stable")
    db.execute("INSERT INTO day_total_columns (day, meter_ids, energy_wh, readings)"
               " VALUES (?, ?, ?, ?)",
               (number, ids[order].astype("<i8").tobytes(),
                encode_values(energy[order].astype(np.int64)),
                encode_values(readings[order].astype(np.int64))))


#: Share of half hours left missing in the synthetic rows.
MISSING_SHARE = 0.002


def build_city_database(data_dir: Path, meters: int, days: int, tz: ZoneInfo, seed: int,
                        offset_s: float = 0.0) -> dict[str, int]:
    """Fill ``data_dir`` (see the module); returns the row count of each large table."""
    fleet = synthetic_fleet(meters, seed)
    ids = np.array([meter.meter_id for meter in fleet], dtype=np.int64)
    codes = np.array([REGIONS.index(meter.region) for meter in fleet], dtype=np.int64)
    storage = open_storage(data_dir)  # the schema and the database id
    storage.set_manager(DEMO_MANAGER, hash_password(DEMO_PASSWORD))
    storage.close()
    now = datetime.now(UTC) + timedelta(seconds=offset_s)
    today = now.astimezone(tz).date()
    history = [today - timedelta(days=back) for back in range(days, 0, -1)]
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3", isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -400000")
    db.execute("DROP TRIGGER IF EXISTS day_readings_first_day")
    db.execute("DROP TRIGGER IF EXISTS daily_totals_first_day")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    db.execute("BEGIN")
    db.executemany("INSERT INTO meters (meter_id, name, fin_no, region, created_at, first_day)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   ((m.meter_id, m.name, m.fin_no, m.region, stamp, day_number(history[0]))
                    for m in fleet))
    db.execute("COMMIT")
    rng = np.random.default_rng(seed)
    for day in history:
        _closed_day(db, rng, ids, codes, day, stamp)
    _day_rows(db, ids, today, _values(rng, len(ids), slots_elapsed(today, now, tz)))
    counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("meters", "daily_totals", "region_daily", "day_readings")}
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return counts


def _values(rng: np.random.Generator, meters: int, slots: int) -> np.ndarray:
    """(meters, 48) half-hour readings [Wh] of the first ``slots`` slots, a few missing."""
    values = np.full((meters, SLOTS_PER_DAY), MISSING, np.uint16)
    values[:, :slots] = rng.integers(20, 900, size=(meters, slots), dtype=np.uint16)
    values[:, :slots][rng.random((meters, slots)) < MISSING_SHARE] = MISSING
    return values


def _day_rows(db: sqlite3.Connection, ids: np.ndarray, day: date, values: np.ndarray) -> None:
    number = day_number(day)
    db.execute("BEGIN")
    db.executemany("INSERT INTO day_readings (day, meter_id, slots_wh, marks) VALUES (?, ?, ?, ?)",
                   ((number, m, blob, ALL_ON_TIME)
                    for m, blob in zip(ids.tolist(), pack_rows(values), strict=True)))
    db.execute("COMMIT")


def _closed_day(db: sqlite3.Connection, rng: np.random.Generator, ids: np.ndarray,
                codes: np.ndarray, day: date, stamp: str) -> None:
    """One closed day: rows, totals, region sums and the closed mark, as the close leaves it."""
    values = _values(rng, len(ids), SLOTS_PER_DAY)
    _day_rows(db, ids, day, values)
    energy, readings = row_totals(values)
    number, text = day_number(day), day.isoformat()
    slot_wh, slot_readings = group_slot_sums(codes, len(REGIONS), values)
    region_wh = np.bincount(codes, weights=energy, minlength=len(REGIONS)).astype(np.int64)
    region_readings = np.bincount(codes, weights=readings, minlength=len(REGIONS))
    region_meters = np.bincount(codes, minlength=len(REGIONS))
    db.execute("BEGIN")
    db.executemany("INSERT INTO daily_totals (day, meter_id, energy_wh, readings)"
                   " VALUES (?, ?, ?, ?)",
                   zip([number] * len(ids), ids.tolist(), energy.tolist(), readings.tolist(),
                       strict=True))
    for code, region in enumerate(REGIONS):
        db.execute("INSERT INTO region_daily (region, day, energy_wh, meters, readings)"
                   " VALUES (?, ?, ?, ?, ?)", (region, text, int(region_wh[code]),
                                               int(region_meters[code]),
                                               int(region_readings[code])))
        db.execute("INSERT INTO region_slots (region, day, slots_wh, readings) VALUES (?, ?, ?, ?)",
                   (region, text, slot_wh[code].astype("<i8").tobytes(),
                    slot_readings[code].astype("<i4").tobytes()))
    _total_columns(db, number, ids, energy, readings)
    db.execute("INSERT INTO closed_days (day, closed_at) VALUES (?, ?)", (text, stamp))
    db.execute("COMMIT")
