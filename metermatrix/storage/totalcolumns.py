"""Each closed day's daily totals as three columns in one row, for sums over many meters.

The dashboards rank every meter's use over a period of closed days. Read as rows of
``daily_totals``, a month at Singapore's 1.4 M meters is 42 M rows; read as one row of
columns per day, it is 30 rows. SQLite keeps them in ``day_total_columns``: ``meter_ids``
ascending int64, ``energy_wh`` and ``readings`` each in the narrowest of uint8, uint32 and
int64 that holds the day's values (the reader knows which from the blob's length), all
little-endian.

A whole day's columns are written where its totals are (the close, an import). A late
reading that amends one meter's total of a closed day only lists the meter in
``amended_totals``; the reader takes those meters' totals from ``daily_totals``, so the
columns of a day are never rewritten for a single reading.
"""

from __future__ import annotations

import sqlite3
from datetime import date

import numpy as np
import numpy.typing as npt

from metermatrix.storage.packing import day_number
from metermatrix.storage.sqltables import Columns, SQLTables, rows_as_columns

_NARROW = (np.dtype("<u1"), np.dtype("<u4"), np.dtype("<i8"))
_IDS = np.dtype("<i8")


def encode_values(values: npt.NDArray[np.int64]) -> bytes:
    """``values`` in the narrowest of uint8, uint32 and int64 that holds them all."""
    low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    for dtype in _NARROW:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.astype(dtype).tobytes()
    raise ValueError("a total does not fit in 64 bits")  # pragma: no cover - int64 input


def decode_values(blob: bytes, count: int) -> npt.NDArray[np.int64]:
    """The ``count`` values of an ``encode_values`` blob, as int64."""
    if count == 0:
        return np.zeros(0, np.int64)
    width = len(blob) // count
    dtype = next((dtype for dtype in _NARROW if dtype.itemsize == width), None)
    if dtype is None or width * count != len(blob):
        raise ValueError(f"a column of {len(blob)} bytes cannot hold {count} values")
    return np.frombuffer(blob, dtype).astype(np.int64)


def with_changes(columns: Columns, changed: Columns) -> Columns:
    """``columns`` with the meters of ``changed`` set to its values (added when new)."""
    ids, energy, readings = columns
    new_ids, new_energy, new_readings = changed
    at = np.searchsorted(ids, new_ids)
    found = at < len(ids)
    found[found] = ids[at[found]] == new_ids[found]
    energy, readings = energy.copy(), readings.copy()
    energy[at[found]], readings[at[found]] = new_energy[found], new_readings[found]
    if found.all():
        return ids, energy, readings
    added = ~found
    ids = np.concatenate([ids, new_ids[added]])
    order = np.argsort(ids, kind="stable")
    return (ids[order], np.concatenate([energy, new_energy[added]])[order],
            np.concatenate([readings, new_readings[added]])[order])


class TotalColumns(SQLTables):
    """The day_total_columns methods of SQLiteStorage (a mixin over its connection)."""

    _db: sqlite3.Connection

    def day_total_columns(self, day: date) -> Columns:
        """Every meter's total of a closed day (none: empty columns)."""
        number = day_number(day)
        row = self._db.execute(
            "SELECT meter_ids, energy_wh, readings FROM day_total_columns WHERE day = ?",
            (number,)).fetchone()
        if row is None:  # closed before the columns were kept, or not closed
            return self._day_totals_of_table(number)
        ids = np.frombuffer(row[0], _IDS).astype(np.int64)
        columns = (ids, decode_values(row[1], len(ids)), decode_values(row[2], len(ids)))
        changed = rows_as_columns(self._db.execute(  # CROSS JOIN: the few amended first
            """SELECT t.meter_id, t.energy_wh, t.readings FROM amended_totals a
               CROSS JOIN daily_totals t ON t.day = a.day AND t.meter_id = a.meter_id
               WHERE a.day = ? ORDER BY a.meter_id""", (number,)).fetchall())
        return with_changes(columns, changed) if len(changed[0]) else columns

    def _write_total_columns(self, number: int, columns: Columns | None = None) -> None:
        """Write day ``number``'s columns (None: from its rows of daily_totals)."""
        ids, energy, readings = columns if columns is not None else \
            self._day_totals_of_table(number)
        self._db.execute("DELETE FROM amended_totals WHERE day = ?", (number,))
        self._db.execute(
            "INSERT OR REPLACE INTO day_total_columns (day, meter_ids, energy_wh, readings)"
            " VALUES (?, ?, ?, ?)",
            (number, ids.astype(_IDS).tobytes(), encode_values(energy),
             encode_values(readings)))

    def _note_amended(self, number: int, meter_ids: list[int]) -> None:
        """The totals of these meters on closed day ``number`` changed since its columns."""
        self._db.executemany(
            "INSERT OR IGNORE INTO amended_totals (day, meter_id) VALUES (?, ?)",
            ((number, meter_id) for meter_id in meter_ids))
