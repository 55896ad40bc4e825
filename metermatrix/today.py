"""Today's readings in memory (seed 1.2), compact enough for 1.4 million meters.

Readings are integer watt-hours in one numpy matrix, a row per meter and a column per
slot; an empty slot holds 0xFFFF. A cell is a uint16 (readings up to 65.534 kWh), so
1.4 M meters x 48 slots take 134 MB plus the id index.

New readings are held to ``max_reading_wh``; readings restored from the database or the
recovery JSON are kept as they were stored, even above a ceiling lowered since, and
``ceiling_wh`` follows the largest of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import numpy.typing as npt

from metermatrix.arrays import sorted_unique
from metermatrix.slots import SLOT_LABELS, SLOTS_PER_DAY
from metermatrix.storage.packing import group_slot_sums, offer_slots

#: Cell value of an empty slot.
MISSING = 0xFFFF
#: Rows counted at a time when the readings per row are recounted.
_RECOUNT_ROWS = 1 << 16


class RegionCodes(Protocol):
    """Meter id -> small region code; ``names[code]`` is the region (see MeterRegions)."""

    names: list[str]

    def codes_of(self, meter_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int16]:
        """The region code of each meter, in the order given."""

    def assign(self, meter_id: int, region: str) -> int:
        """Record a meter's (new) region; returns its code."""


@dataclass(frozen=True)
class OpenDaySums:
    """A copy of some regions' sums of the open day, for work off the event loop."""

    day: date
    #: region -> (energy_wh, readings) per slot.
    sums: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]

    def region_slots(self, region: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(energy_wh, readings) per slot of ``region``'s meters (zeros if not copied)."""
        empty = np.zeros(SLOTS_PER_DAY, np.int64)
        return self.sums.get(region, (empty, empty))


@dataclass(frozen=True)
class PutOutcomes:
    """What ``TodayStore.put_many`` did with each offered reading."""

    #: True where the reading was stored; False for a duplicate or a conflict.
    stored: npt.NDArray[np.bool_]
    #: The reading the slot holds now [Wh] (the offer itself where it was stored).
    kept_wh: npt.NDArray[np.int64]
    #: Meters that had no row before the call.
    new_meters: npt.NDArray[np.int64]


class TodayStore:
    """Half-hourly readings of the open day, by meter and slot [Wh]."""

    def __init__(self, day: date, max_reading_wh: int, capacity: int = 1024,
                 regions: RegionCodes | None = None) -> None:
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
        # Readings held per row, and how many rows hold any: the meters heard today.
        self._row_readings = np.zeros(max(capacity, 1), np.uint8)
        self._heard = 0
        # Per region and slot, kept in step with every put and clear: energy [Wh], readings.
        self.regions = regions
        self._group = np.zeros(max(capacity, 1), np.int16)
        self._region_wh = np.zeros((0, SLOTS_PER_DAY), np.int64)
        self._region_readings = np.zeros((0, SLOTS_PER_DAY), np.int64)
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
            if self.regions is not None:
                self._group[row] = self.regions.codes_of(np.array([meter_id], np.int64))[0]
                self._fit_regions()
        return row

    def _fit_regions(self) -> None:
        assert self.regions is not None
        missing = len(self.regions.names) - len(self._region_wh)
        if missing > 0:
            extra = np.zeros((missing, SLOTS_PER_DAY), np.int64)
            self._region_wh = np.concatenate([self._region_wh, extra])
            self._region_readings = np.concatenate([self._region_readings, extra])

    def _grow(self, capacity: int) -> None:
        values = np.full((capacity, SLOTS_PER_DAY), self.missing, self.dtype)
        values[: len(self._values)] = self._values
        ids = np.zeros(capacity, np.int64)
        ids[: len(self._ids)] = self._ids
        group = np.zeros(capacity, np.int16)
        group[: len(self._group)] = self._group
        row_readings = np.zeros(capacity, np.uint8)
        row_readings[: len(self._row_readings)] = self._row_readings
        self._values, self._ids, self._group = values, ids, group
        self._row_readings = row_readings

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
        old = int(self._values[row, slot])
        if old == self.missing:
            self._readings += 1
            self._heard += int(self._row_readings[row] == 0)
            self._row_readings[row] += 1
            old = 0
            if self.regions is not None:
                self._region_readings[self._group[row], slot] += 1
        if self.regions is not None:
            self._region_wh[self._group[row], slot] += energy_wh - old
        self._values[row, slot] = energy_wh
        self.version += 1

    def put_many(self, meter_ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64],
                 energy_wh: npt.NDArray[np.int64]) -> PutOutcomes:
        """Offer many readings at once, as ``get`` then ``put`` one after the other would.

        A slot already held, or offered earlier in the same call, keeps its reading: the
        offer is a duplicate when it carries the same value and a conflict otherwise.
        """
        if len(energy_wh) and not 0 <= int(energy_wh.min()) <= int(energy_wh.max()) \
                <= self.max_reading_wh:
            raise ValueError(f"energy_wh outside 0..{self.max_reading_wh}")
        rows, new_meters = self._rows_for(meter_ids)
        keys = rows * SLOTS_PER_DAY + slots
        flat = self._values.reshape(-1)
        stored, kept = offer_slots(flat[keys], keys, energy_wh)
        flat[keys[stored]] = energy_wh[stored]
        if self.regions is not None:
            np.add.at(self._region_wh, (self._group[rows[stored]], slots[stored]),
                      energy_wh[stored])
            np.add.at(self._region_readings, (self._group[rows[stored]], slots[stored]), 1)
        touched = rows[stored]
        heard = sorted_unique(touched)
        self._heard += int(np.count_nonzero(self._row_readings[heard] == 0))
        np.add.at(self._row_readings, touched, 1)
        self._readings += int(np.count_nonzero(stored))
        self.version += 1
        return PutOutcomes(stored, kept, new_meters)

    def _rows_for(self, meter_ids: npt.NDArray[np.int64]
                  ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
        """The row of each meter, making rows for new ones; and the ids that were new."""
        unique, inverse = np.unique(meter_ids, return_inverse=True)
        known = self._rows
        new = [meter_id for meter_id in unique.tolist() if meter_id not in known]
        if new:
            self.reserve(max(len(known) + len(new), 2 * len(known)))
            first = len(known)
            known.update(zip(new, range(first, first + len(new)), strict=True))
            self._ids[first: first + len(new)] = new
            if self.regions is not None:
                self._group[first: first + len(new)] = self.regions.codes_of(
                    np.array(new, np.int64))
                self._fit_regions()
        unique_rows = np.array([known[meter_id] for meter_id in unique.tolist()], np.intp)
        return unique_rows[inverse.reshape(-1)], np.array(new, np.int64)

    def clear(self, meter_id: int, slot: int) -> None:
        """Forget a reading (its write failed and was never acknowledged)."""
        row = self._rows.get(meter_id)
        if row is not None and self._values[row, slot] != self.missing:
            if self.regions is not None:
                self._region_wh[self._group[row], slot] -= int(self._values[row, slot])
                self._region_readings[self._group[row], slot] -= 1
            self._values[row, slot] = self.missing
            self._readings -= 1
            self._row_readings[row] -= 1
            self._heard -= int(self._row_readings[row] == 0)
            self.version += 1

    def meter_ids(self) -> npt.NDArray[np.int64]:
        """Ids of the meters with a row, in row order."""
        return self._ids[: len(self._rows)]

    def matrix(self) -> npt.NDArray[np.integer]:
        """The (meters, 48) reading matrix in row order; empty slots hold ``missing``."""
        return self._values[: len(self._rows)]

    def rows_by_id(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        """A copy of every row ordered by meter id: (meter_ids, (meters, 48) [Wh])."""
        order = np.argsort(self.meter_ids(), kind="stable")
        return self.meter_ids()[order], self.matrix()[order].astype(np.uint16)

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

    def heard_count(self) -> int:
        """How many meters sent at least one reading of the day (kept as a count)."""
        return self._heard

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
        known = self._rows
        new: list[int] = []
        for index, meter_id in enumerate(meter_ids.tolist()):
            row = known.get(meter_id)
            if row is None:
                row = known[meter_id] = len(known)
                new.append(row)
            rows[index] = row
        self._ids[rows] = meter_ids
        if self.regions is not None and new:
            self._group[new] = self.regions.codes_of(self._ids[new])
            self._fit_regions()
        current = self._values[rows]
        self._values[rows] = np.where(current != self.missing, current, values)
        held = values[values != self.missing]
        if len(held):
            self.ceiling_wh = max(self.ceiling_wh, int(held.max()))
        self._readings = int(np.count_nonzero(self.matrix() != self.missing))
        self._recount_rows()
        self._recount_regions()
        self.version += 1
        return self._readings

    def _recount_rows(self) -> None:
        """Count every row's readings afresh from the matrix (after a bulk change)."""
        self._row_readings.fill(0)
        for start in range(0, len(self._rows), _RECOUNT_ROWS):
            values = self._values[start: min(start + _RECOUNT_ROWS, len(self._rows))]
            self._row_readings[start: start + len(values)] = (
                values != self.missing).sum(axis=1)
        self._heard = int(np.count_nonzero(self._row_readings))

    def _recount_regions(self) -> None:
        """Sum every region's slots afresh from the matrix (after a bulk change)."""
        if self.regions is None:
            return
        self._region_wh, self._region_readings = group_slot_sums(
            self._group[: len(self._rows)], len(self._region_wh), self.matrix())

    def region_slots(self, region: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(energy_wh, readings) per slot of ``region``'s meters so far (zeros if none)."""
        if self.regions is None:
            raise ValueError("this store keeps no region sums")
        names = self.regions.names
        if region not in names or names.index(region) >= len(self._region_wh):
            return np.zeros(SLOTS_PER_DAY, np.int64), np.zeros(SLOTS_PER_DAY, np.int64)
        code = names.index(region)
        return self._region_wh[code].copy(), self._region_readings[code].copy()

    def open_day_sums(self, regions: Iterable[str]) -> OpenDaySums | None:
        """A copy of the open day's sums of ``regions``; None when this store keeps none."""
        if self.regions is None:
            return None
        return OpenDaySums(self.day, {region: self.region_slots(region) for region in regions})

    def move(self, meter_id: int, region: str) -> None:
        """Count a meter's readings under ``region`` from now on (its region changed)."""
        if self.regions is None:
            return
        code = self.regions.assign(meter_id, region)
        row = self._rows.get(meter_id)
        if row is None:
            return
        self._fit_regions()
        values = self._values[row]
        present = values != self.missing
        old = self._group[row]
        self._region_wh[old] -= np.where(present, values, 0)
        self._region_readings[old] -= present
        self._region_wh[code] += np.where(present, values, 0)
        self._region_readings[code] += present
        self._group[row] = code
        self.version += 1

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
        self._row_readings.fill(0)
        self._heard = 0
        self._region_wh.fill(0)
        self._region_readings.fill(0)
        self.version += 1
