"""SQLite: readings of any day decided as columns, one read and one write of each row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import OUTCOMES, Outcome, Reading, StorageError
from metermatrix.storage.packing import LATE, MISSING, ON_TIME, day_number, offer_slots

#: Indexes into OUTCOMES ("stored", "duplicate", "conflict", "imported").
_STORED, _DUPLICATE, _CONFLICT, _IMPORTED = 0, 1, 2, 3

_Rows = dict[int, tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]]


class ColumnReadings:
    """``store_readings`` and ``store_day_readings`` of SQLiteStorage."""

    def _rows_of(self, day: int, meter_ids: Sequence[int]) -> _Rows:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def _write_rows(self, day: int, rows: _Rows, old: _Rows | None) -> None:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def _is_closed(self, day: date) -> bool:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def imported_meters(self, day: date, meter_ids: Sequence[int]) -> set[int]:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def add_meters(self, meter_ids: Iterable[int]) -> None:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def store_readings(self, readings: Sequence[Reading]) -> list[Outcome]:
        """``store_reading`` for many readings: one read and one write of each meter's row.

        Decided as columns, day by day, exactly as one reading after the other would be.
        """
        if not readings:
            return []
        energy = np.fromiter(map(attrgetter("energy_wh"), readings), np.int64, len(readings))
        meter_ids = np.fromiter(map(attrgetter("meter_id"), readings), np.int64, len(readings))
        slots = np.fromiter(map(attrgetter("slot"), readings), np.int64, len(readings))
        days = [reading.day for reading in readings]
        codes = np.zeros(len(readings), np.int64)
        for day in set(days):
            here = np.fromiter((d == day for d in days), bool, len(days))
            codes[here] = self.store_day_readings(day, meter_ids[here], slots[here],
                                                  energy[here])
        return [OUTCOMES[code] for code in codes.tolist()]

    def store_day_readings(self, day: date, meter_ids: npt.NDArray[np.int64],
                           slots: npt.NDArray[np.int64], energy: npt.NDArray[np.int64]
                           ) -> npt.NDArray[np.int64]:
        """Store one day's readings given as columns; each one's index into ``OUTCOMES``."""
        bad = np.flatnonzero((energy < 0) | (energy >= MISSING))
        if len(bad):
            check_energy(int(energy[bad[0]]))
        number, closed = day_number(day), self._is_closed(day)
        unique = np.unique(meter_ids)
        old = self._rows_of(number, unique.tolist())
        imported = self.imported_meters(day, [m for m in unique.tolist() if m not in old])
        values = np.full((len(unique), SLOTS_PER_DAY), MISSING, np.uint16)
        marks = np.zeros((len(unique), SLOTS_PER_DAY), np.uint8)
        for row, meter_id in enumerate(unique.tolist()):
            if meter_id in old:
                values[row], marks[row] = old[meter_id]
        rows = np.searchsorted(unique, meter_ids)
        blocked = np.isin(meter_ids, np.array(sorted(imported), np.int64))
        keys = rows * SLOTS_PER_DAY + slots
        held = values.reshape(-1)[keys].astype(np.int64)
        # A refused meter's lines are refused whole: shown as held, never stored.
        stored, kept = offer_slots(np.where(blocked, 0, held), keys, energy)
        stored &= ~blocked
        codes = np.where(kept == energy, _DUPLICATE, _CONFLICT)
        codes[stored], codes[blocked] = _STORED, _IMPORTED
        values.reshape(-1)[keys[stored]] = energy[stored]
        marks.reshape(-1)[keys[stored]] = LATE if closed else ON_TIME
        changed = np.unique(rows[stored]).tolist()
        self.add_meters(int(unique[row]) for row in changed if int(unique[row]) not in old)
        self._write_rows(number, {int(unique[row]): (values[row], marks[row])
                                  for row in changed}, old if closed else None)
        return codes


def check_energy(energy_wh: int) -> None:
    """StorageError for a reading [Wh] a packed slot cannot hold."""
    if not 0 <= energy_wh < MISSING:
        raise StorageError(f"reading of {energy_wh} Wh is outside 0..{MISSING - 1}")
