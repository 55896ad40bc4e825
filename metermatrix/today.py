"""Today's readings in memory (seed 1.2), compact enough for 1.4 million meters.

Readings are integer watt-hours in one numpy matrix, a row per meter and a column per
slot; an empty slot holds 0xFFFF. A cell is a uint16 (readings up to 65.534 kWh), so
1.4 M meters x 48 slots take 134 MB plus the id index.

New readings are held to ``max_reading_wh``; readings restored from the database or the
recovery JSON are kept as they were stored, even above a ceiling lowered since, and
``ceiling_wh`` follows the largest of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOT_LABELS, SLOTS_PER_DAY

#: Cell value of an empty slot.
MISSING = 0xFFFF


class TodayStore:
    """Half-hourly readings of the open day, by meter and slot [Wh]."""

    def __init__(self, day: date, max_reading_wh: int, capacity: int = 1024) -> None:
        self.day = day
        self.max_reading_wh = max_reading_wh
        if not 0 < max_reading_wh < MISSING:
            raise ValueError(f"max_reading_wh must be between 1 and {MISSING - 1}")
        #: No reading held is above this [Wh]: ``max_reading_wh`` or a larger restored one.
        self.ceiling_wh = max_reading_wh
        self.dtype = np.dtype(np.uint16)
        self.missing = MISSING
        self._values = np.full((max(capacity, 1), SLOTS_PER_DAY), self.missing, self.dtype)
        self._ids = np.zeros(max(capacity, 1), np.int64)
        self._rows: dict[int, int] = {}
        self._readings = 0
        #: Changes whenever a reading is put or cleared (caches of figures compare it).
        self.version = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, meter_id: object) -> bool:
        return meter_id in self._rows

    def _row_of(self, meter_id: int) -> int:
        row = self._rows.get(meter_id)
        if row is None:
            row = len(self._rows)
            if row == len(self._ids):
                self._grow(2 * row)
            self._ids[row] = meter_id
            self._rows[meter_id] = row
        return row

    def _grow(self, capacity: int) -> None:
        values = np.full((capacity, SLOTS_PER_DAY), self.missing, self.dtype)
        values[: len(self._values)] = self._values
        ids = np.zeros(capacity, np.int64)
        ids[: len(self._ids)] = self._ids
        self._values, self._ids = values, ids

    def reserve(self, meters: int) -> None:
        """Make room for ``meters`` meters up front (avoids regrowing while filling)."""
        if meters > len(self._ids):
            self._grow(meters)

    def get(self, meter_id: int, slot: int) -> int | None:
        """The reading of a meter's slot [Wh], or None when none has arrived."""
        row = self._rows.get(meter_id)
        if row is None:
            return None
        value = int(self._values[row, slot])
        return None if value == self.missing else value

    def put(self, meter_id: int, slot: int, energy_wh: int) -> None:
        """Record a new reading [Wh] (the caller has checked the slot was empty)."""
        if not 0 <= energy_wh <= self.max_reading_wh:
            raise ValueError(f"energy_wh {energy_wh} outside 0..{self.max_reading_wh}")
        self._set(meter_id, slot, energy_wh)

    def put_stored(self, meter_id: int, slot: int, energy_wh: int) -> None:
        """Record a reading acknowledged earlier [Wh], as stored, whatever today's ceiling."""
        if not 0 <= energy_wh < self.missing:
            raise ValueError(f"energy_wh {energy_wh} outside 0..{self.missing - 1}")
        self.ceiling_wh = max(self.ceiling_wh, energy_wh)
        self._set(meter_id, slot, energy_wh)

    def _set(self, meter_id: int, slot: int, energy_wh: int) -> None:
        row = self._row_of(meter_id)  # may grow (replace) the matrix: look it up after
        if self._values[row, slot] == self.missing:
            self._readings += 1
        self._values[row, slot] = energy_wh
        self.version += 1

    def clear(self, meter_id: int, slot: int) -> None:
        """Forget a reading (its write failed and was never acknowledged)."""
        row = self._rows.get(meter_id)
        if row is not None and self._values[row, slot] != self.missing:
            self._values[row, slot] = self.missing
            self._readings -= 1
            self.version += 1

    def meter_ids(self) -> npt.NDArray[np.int64]:
        """Ids of the meters with a row, in row order."""
        return self._ids[: len(self._rows)]

    def matrix(self) -> npt.NDArray[np.integer]:
        """The (meters, 48) reading matrix in row order; empty slots hold ``missing``."""
        return self._values[: len(self._rows)]

    def totals(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(meter_ids, energy_wh, readings) of every meter with at least one reading."""
        values = self.matrix()
        present = values != self.missing
        counts = present.sum(axis=1, dtype=np.int64)
        energy = np.where(present, values, 0).sum(axis=1, dtype=np.int64)
        keep = counts > 0
        return self.meter_ids()[keep], energy[keep], counts[keep]

    def reading_count(self) -> int:
        """How many readings the store holds (kept as a count, not recounted)."""
        return self._readings

    def row_values(self, meter_id: int) -> npt.NDArray[np.uint16]:
        """A copy of one meter's 48 slots [Wh] (``missing`` where empty)."""
        row: npt.NDArray[np.uint16] = self._values[self._rows[meter_id]].copy()
        return row

    def rows_of(self, meter_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.uint16]:
        """A copy of the rows of meters already in the store, in the order given."""
        rows: npt.NDArray[np.uint16] = self._values[[self._rows[int(m)] for m in meter_ids]]
        return rows

    def merge(self, meter_ids: npt.NDArray[np.int64], values: npt.NDArray[np.integer]) -> int:
        """Fill the empty slots of many meters at once (restore); returns readings now held.

        ``values`` is (meters, 48) with ``missing`` where empty; slots already held keep
        their reading. Meters new to the store get rows in the order given.
        """
        self.reserve(len(self._rows) + len(meter_ids))
        rows = np.empty(len(meter_ids), np.intp)
        for index, meter_id in enumerate(meter_ids.tolist()):
            rows[index] = self._row_of(meter_id)
        current = self._values[rows]
        self._values[rows] = np.where(current != self.missing, current, values)
        held = values[values != self.missing]
        if len(held):
            self.ceiling_wh = max(self.ceiling_wh, int(held.max()))
        self._readings = int(np.count_nonzero(self.matrix() != self.missing))
        self.version += 1
        return self._readings

    def iter_readings(self) -> Iterator[tuple[int, int, int]]:
        """Every (meter_id, slot, energy_wh) held, by row then slot."""
        values = self.matrix()
        rows, slots = np.nonzero(values != self.missing)
        ids = self.meter_ids()
        for row, slot in zip(rows.tolist(), slots.tolist(), strict=True):
            yield int(ids[row]), slot, int(values[row, slot])

    def to_nested(self) -> dict[str, dict[str, float]]:
        """The seed's nested format: {"<meter_id>": {"00:31": kWh, ...}} (small stores)."""
        nested: dict[str, dict[str, float]] = {}
        for meter_id, slot, energy_wh in self.iter_readings():
            nested.setdefault(str(meter_id), {})[SLOT_LABELS[slot]] = energy_wh / 1000
        return nested

    def reset(self, day: date) -> None:
        """Start an empty day: every slot empty, the meters' rows kept for tomorrow."""
        self.day = day
        self._values.fill(self.missing)
        self.ceiling_wh = self.max_reading_wh
        self._readings = 0
        self.version += 1
