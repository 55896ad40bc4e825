"""Operators' safety nets: a consistent copy of the database, and a check of closed days."""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from metermatrix.storage import Storage


def backup_database(db_path: Path, out: Path) -> int:
    """Copy the SQLite database at ``db_path`` to ``out`` with SQLite's online backup API,
    in one step so the copy is one consistent moment even while the server writes; returns
    its size [bytes]. The copy is written beside ``out`` and renamed into place."""
    if not db_path.is_file():
        raise FileNotFoundError(f"no master database at {db_path}")
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        os.replace(partial, out)
    finally:
        source.close()
        partial.unlink(missing_ok=True)
    return out.stat().st_size


@dataclass(frozen=True)
class DayCheck:
    """One closed day checked: meter-days compared, unchecked and differing."""

    day: date
    meters_checked: int
    totals_without_readings: int
    differences: list[str]


def verify_day(storage: Storage, day: date) -> DayCheck:
    """Compare each meter's stored total of a closed ``day`` with the sum of its readings.

    A total with no readings at all came from an import and cannot be checked; a reading
    of a meter without a total, or a total that is not its readings' sum, is a difference.
    """
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for reading in storage.readings_of_day(day):
        entry = sums[reading.meter_id]
        entry[0] += reading.energy_wh
        entry[1] += 1
    differences: list[str] = []
    unchecked = checked = 0
    for total in storage.daily_totals_between(None, day, day):
        energy_wh, count = sums.pop(total.meter_id, (0, 0))
        if count == 0:
            unchecked += 1
            continue
        checked += 1
        if (energy_wh, count) != (total.energy_wh, total.readings):
            differences.append(f"{day} meter {total.meter_id:09d}: total {total.energy_wh} Wh "
                               f"over {total.readings} readings, readings sum to {energy_wh} "
                               f"Wh over {count}")
    for meter_id, (energy_wh, count) in sorted(sums.items()):
        differences.append(f"{day} meter {meter_id:09d}: no total, {count} readings of "
                           f"{energy_wh} Wh")
    return DayCheck(day, checked, unchecked, differences)


def verify_closed_days(storage: Storage) -> list[DayCheck]:
    """``verify_day`` for every closed day, oldest first."""
    return [verify_day(storage, day) for day in storage.closed_days()]
