"""One day's readings decided as columns, shared by both SQL backends.

A backend reads the day's rows of the meters once, ``decide_day`` answers every reading
as ``store_reading`` one after the other would, and the backend writes each changed row
once: SQLite in storage/sqlite_columns.py, PostgreSQL in storage/postgres_columns.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from metermatrix.arrays import sorted_unique
from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import OUTCOMES, Outcome, Reading, StorageError
from metermatrix.storage.packing import LATE, MISSING, ON_TIME, offer_slots

#: Indexes into OUTCOMES ("stored", "duplicate", "conflict", "imported").
STORED, DUPLICATE, CONFLICT, IMPORTED = 0, 1, 2, 3

#: A meter's row of one day: (48 values [Wh], MISSING where empty; 48 marks).
Row = tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]
Rows = dict[int, Row]


@dataclass(frozen=True)
class DayDecision:
    """What a day's readings do to the rows of their meters."""

    #: Per reading: its index into OUTCOMES.
    codes: npt.NDArray[np.int64]
    #: The meters of the readings, ascending.
    meter_ids: npt.NDArray[np.int64]
    #: (meters, 48) values [Wh] and marks of each meter's row after the readings.
    values: npt.NDArray[np.uint16]
    marks: npt.NDArray[np.uint8]
    #: Rows (indexes into ``meter_ids``) with at least one reading stored.
    changed: npt.NDArray[np.intp]

    def changed_rows(self) -> Rows:
        """{meter_id: (values, marks)} of the rows with a reading stored."""
        return {int(self.meter_ids[row]): (self.values[row], self.marks[row])
                for row in self.changed.tolist()}


def decide_day(meter_ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64],
               energy_wh: npt.NDArray[np.int64], old: Rows, refused: Collection[int],
               closed: bool) -> DayDecision:
    """Offer one day's readings to the rows ``old`` held before (absent: empty).

    Readings of a ``refused`` meter (its day imported as a total) answer "imported" and
    are never stored; a stored reading is marked LATE on a ``closed`` day.
    """
    check_energies(energy_wh)
    unique = sorted_unique(meter_ids)
    values = np.full((len(unique), SLOTS_PER_DAY), MISSING, np.uint16)
    marks = np.zeros((len(unique), SLOTS_PER_DAY), np.uint8)
    for row, meter_id in enumerate(unique.tolist()):
        if meter_id in old:
            values[row], marks[row] = old[meter_id]
    rows = np.searchsorted(unique, meter_ids)
    blocked = np.isin(meter_ids, np.array(sorted(refused), np.int64))
    keys = rows * SLOTS_PER_DAY + slots
    held = values.reshape(-1)[keys].astype(np.int64)
    # A refused meter's lines are refused whole: shown as held, never stored.
    stored, kept = offer_slots(np.where(blocked, 0, held), keys, energy_wh)
    stored &= ~blocked
    codes = np.where(kept == energy_wh, DUPLICATE, CONFLICT).astype(np.int64)
    codes[stored], codes[blocked] = STORED, IMPORTED
    values.reshape(-1)[keys[stored]] = energy_wh[stored]
    marks.reshape(-1)[keys[stored]] = LATE if closed else ON_TIME
    return DayDecision(codes, unique, values, marks, sorted_unique(rows[stored]))


def check_energies(energy_wh: npt.NDArray[np.int64]) -> None:
    """StorageError for the first reading [Wh] a packed slot cannot hold."""
    bad = np.flatnonzero((energy_wh < 0) | (energy_wh >= MISSING))
    if len(bad):
        check_energy(int(energy_wh[bad[0]]))


def check_energy(energy_wh: int) -> None:
    """StorageError for a reading [Wh] a packed slot cannot hold."""
    if not 0 <= energy_wh < MISSING:
        raise StorageError(f"reading of {energy_wh} Wh is outside 0..{MISSING - 1}")


def store_by_day(store_day: Callable[[date, npt.NDArray[np.int64], npt.NDArray[np.int64],
                                      npt.NDArray[np.int64]], npt.NDArray[np.int64]],
                 readings: Sequence[Reading]) -> list[Outcome]:
    """``store_readings`` through a backend's ``store_day_readings``, day by day (oldest
    first: two processes storing the same days lock them in the same order)."""
    if not readings:
        return []
    energy = np.fromiter(map(attrgetter("energy_wh"), readings), np.int64, len(readings))
    meter_ids = np.fromiter(map(attrgetter("meter_id"), readings), np.int64, len(readings))
    slots = np.fromiter(map(attrgetter("slot"), readings), np.int64, len(readings))
    days = [reading.day for reading in readings]
    codes = np.zeros(len(readings), np.int64)
    for day in sorted(set(days)):
        here = np.fromiter((d == day for d in days), bool, len(days))
        codes[here] = store_day(day, meter_ids[here], slots[here], energy[here])
    return [OUTCOMES[code] for code in codes.tolist()]
