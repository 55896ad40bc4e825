"""The consumption benchmark's database on PostgreSQL, built with COPY (bench/consumption.py).

The same history as the SQLite build: every meter with a resident account (one password
hash shared), a year of daily totals, half-hourly readings of the last ``fleet_days``
days and of today so far, and a year of readings for each benchmarked resident. Each
day's rows go in by one COPY; the days are then closed by the backend (region figures).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metermatrix.fleet import synthetic_fleet  # noqa: E402
from metermatrix.loadshape import fleet_day_energy_wh  # noqa: E402
from metermatrix.slots import SLOTS_PER_DAY  # noqa: E402
from metermatrix.storage import open_storage  # noqa: E402
from metermatrix.storage.packing import (  # noqa: E402
    ALL_ON_TIME,
    MISSING,
    day_number,
    pack_rows,
)


def copy_rows(db: psycopg.Connection, statement: str, rows: object) -> None:
    """One COPY ... FROM STDIN of ``rows`` (an iterable of tuples)."""
    with db.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:  # type: ignore[attr-defined]
            copy.write_row(row)


def copy_day_readings(db: psycopg.Connection, meter_ids: np.ndarray, day: date,
                      energy_wh: np.ndarray) -> None:
    """Packed rows of one day by COPY: (meters x slots) readings [Wh], negative missing."""
    values = np.full((len(meter_ids), SLOTS_PER_DAY), MISSING, np.uint16)
    values[:] = np.where(energy_wh >= 0, energy_wh, MISSING)
    number = day_number(day)
    copy_rows(db, "COPY day_readings (meter_id, day, slots_wh, marks) FROM STDIN",
              ((m, number, blob, ALL_ON_TIME)
               for m, blob in zip(meter_ids.tolist(), pack_rows(values), strict=True)))


def build_postgres(url: str, data_dir: Path, meters: int, fleet_days: int, residents: int,
                   password_hash: str, tz: ZoneInfo, seed: int) -> list[int]:
    """Fill the database at ``url``; returns the benchmarked residents' meters."""
    from bench.consumption import due_slots

    fleet = synthetic_fleet(meters, seed)
    ids = np.array([meter.meter_id for meter in fleet], dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(len(ids), residents, replace=False)
    chosen_ids = np.sort(ids[chosen])
    now = datetime.now(UTC)
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=back) for back in range(365, 0, -1)]
    storage = open_storage(data_dir, database=url)
    for day in days[::28] + [today]:
        storage.prepare_days(day)
    storage.close()
    rng = np.random.default_rng(seed)
    recent = set(days[-fleet_days:]) if fleet_days else set()
    with psycopg.connect(url) as db:
        copy_rows(db, "COPY meters (meter_id, name, fin_no, region) FROM STDIN",
                  ((m.meter_id, m.name, m.fin_no, m.region) for m in fleet))
        copy_rows(db, "COPY residents (meter_id, password_hash) FROM STDIN",
                  ((m, password_hash) for m in ids.tolist()))
        for day in days:
            readers = ids if day in recent else chosen_ids
            energy_wh = fleet_day_energy_wh(readers, day, seed)
            copy_day_readings(db, readers, day, energy_wh)
            totals = np.rint(rng.lognormal(np.log(9500), 0.35, len(ids))).astype(np.int64)
            totals[np.searchsorted(ids, readers)] = energy_wh.sum(axis=1)
            copy_rows(db, "COPY daily_totals (meter_id, day, energy_wh, readings) FROM STDIN",
                      zip(ids.tolist(), [day_number(day)] * len(ids), totals.tolist(),
                          [SLOTS_PER_DAY] * len(ids), strict=True))
            db.commit()
        energy_wh = fleet_day_energy_wh(ids, today, seed)
        energy_wh[:, due_slots(today, now, tz):] = -1
        copy_day_readings(db, ids, today, energy_wh)
        db.commit()
        db.execute("ANALYZE")
        db.commit()
    storage = open_storage(data_dir, database=url)
    for day in days:  # marks the day closed and totals its regions
        with storage.transaction():
            storage.close_day(day, [])
    storage.close()
    return chosen_ids.tolist()
