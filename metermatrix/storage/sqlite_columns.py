"""SQLite: readings of any day decided as columns, one read and one write of each row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt

from metermatrix.arrays import sorted_unique
from metermatrix.storage.base import Outcome, Reading
from metermatrix.storage.columns import Rows, check_energies, decide_day, store_by_day
from metermatrix.storage.packing import day_number


class ColumnReadings:
    """``store_readings`` and ``store_day_readings`` of SQLiteStorage."""

    def _rows_of(self, day: int, meter_ids: Sequence[int]) -> Rows:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def _write_rows(self, day: int, rows: Rows, old: Rows | None) -> None:
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
        return store_by_day(self.store_day_readings, readings)

    def store_day_readings(self, day: date, meter_ids: npt.NDArray[np.int64],
                           slots: npt.NDArray[np.int64], energy: npt.NDArray[np.int64]
                           ) -> npt.NDArray[np.int64]:
        """Store one day's readings given as columns; each one's index into ``OUTCOMES``."""
        check_energies(energy)
        number, closed = day_number(day), self._is_closed(day)
        unique = sorted_unique(meter_ids).tolist()
        old = self._rows_of(number, unique)
        imported = self.imported_meters(day, [m for m in unique if m not in old])
        decision = decide_day(meter_ids, slots, energy, old, imported, closed)
        changed = decision.changed_rows()
        self.add_meters(m for m in changed if m not in old)
        self._write_rows(number, changed, old if closed else None)
        return decision.codes
