"""A city-scale data folder for the dashboard benchmark, built fast in key order.

``build_city_database`` makes what the server would have after ``days`` closed days of
``meters`` meters: every meter's packed half-hourly rows of each closed day and of today
so far, the daily totals summed from those rows, ``region_daily`` and ``region_slots``
summed per region from the same rows, the closed days, and each meter's first day. The
rows are written with executemany a day at a time in (day, meter_id) order, the first-day
triggers set aside during the build (one UPDATE sets the first days at the end; the server
puts the triggers back when it opens the folder). About 1.4 M meters x 30 days: 42 M rows
of each large table, some 6 GB of disk.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD, hash_password
from metermatrix.fleet import REGIONS, synthetic_fleet
from metermatrix.slots import SLOTS_PER_DAY, slots_elapsed
from metermatrix.storage import open_storage
from metermatrix.storage.packing import (
    ALL_ON_TIME,
    MISSING,
    day_number,
    group_slot_sums,
    pack_rows,
    row_totals,
)

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
    db.execute("INSERT INTO closed_days (day, closed_at) VALUES (?, ?)", (text, stamp))
    db.execute("COMMIT")
