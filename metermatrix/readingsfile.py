"""Whole days of half-hourly readings in one compact file (testing_data/readings.csv.gz).

A gzip-compressed CSV with one line per meter and day: ``meter_id``, ``day`` (ISO date),
then the day's 48 readings in watt-hours [Wh] in slot order, headed by the slot labels of
the master database's ``previous_day`` ("00:31" ... "23:31", then "00:01"). An empty cell
is a half hour without a reading. The file is written with a zero gzip timestamp, so the
same readings always give the same bytes. It travels beside a master database JSON, which
stays in the seed's format (1.4): ``masterdb.import_master(..., readings=path)``.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOT_LABELS, SLOTS_PER_DAY
from metermatrix.storage.packing import MISSING

HEADER = ("meter_id", "day", *SLOT_LABELS)

#: One day of the file: (meter ids, (meters, 48) readings [Wh], MISSING where empty).
DayRows = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]


class ReadingsFileError(ValueError):
    """A readings file that cannot be read."""


def write_readings(path: Path,
                   rows: Iterable[tuple[int, date, npt.NDArray[np.integer]]]) -> None:
    """Write (meter_id, day, 48 readings [Wh], negative or MISSING where empty) rows."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for meter_id, day, values in rows:
        cells = ["" if value < 0 or value == MISSING else str(int(value)) for value in values]
        writer.writerow([f"{meter_id:09d}", day.isoformat(), *cells])
    path.write_bytes(gzip.compress(text.getvalue().encode(), compresslevel=9, mtime=0))


def read_readings(path: Path) -> dict[date, DayRows]:
    """The file's readings by day, meters in file order; ReadingsFileError if malformed."""
    try:
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ReadingsFileError(f"{path} is not a gzip-compressed CSV: {error}") from None
    rows = [line.split(",") for line in lines]  # no cell is ever quoted
    if not rows or tuple(rows[0]) != HEADER:
        raise ReadingsFileError(f"{path}: the first line must be {','.join(HEADER)}")
    for number, cells in enumerate(rows[1:], start=2):
        if len(cells) != len(HEADER):
            raise ReadingsFileError(f"{path}:{number}: expected {len(HEADER)} cells, got"
                                    f" {len(cells)}")
    try:
        ids = np.array([int(cells[0]) for cells in rows[1:]], dtype=np.int64)
        days = [date.fromisoformat(cells[1]) for cells in rows[1:]]
        values = np.array([int(cell) if cell else MISSING for cells in rows[1:]
                           for cell in cells[2:]], dtype=np.int64).reshape(-1, SLOTS_PER_DAY)
    except ValueError as error:
        raise ReadingsFileError(f"{path}: {error}") from None
    if ((ids <= 0) | (ids > 999_999_999)).any() or ((values < 0) | (values > MISSING)).any():
        raise ReadingsFileError(f"{path}: a meter id or a reading [Wh] out of range")
    by_day: dict[date, list[int]] = {}
    for row, day in enumerate(days):
        by_day.setdefault(day, []).append(row)
    return {day: (ids[picked], values[picked].astype(np.uint16))
            for day, picked in sorted(by_day.items())}
