"""Queries the two SQL backends share word for word but for the parameter placeholder."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import UNASSIGNED, MeterRecord
from metermatrix.storage.packing import MISSING, day_number, day_of_number, unpack_rows

#: (energy_wh, readings) per slot of one day.
SlotSums = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
#: (meter_ids ascending, energy_wh, readings) of one day.
Columns = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]


def rows_as_columns(rows: list[tuple[int, int, int]] | npt.NDArray[np.int64]) -> Columns:
    """(meter_id, energy_wh, readings) rows ordered by meter (or their values in a row),
    as columns."""
    array = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return array[:, 0].copy(), array[:, 1].copy(), array[:, 2].copy()


class SQLTables:
    """Under both backends' day tables; ``MARK`` is the driver's parameter placeholder."""

    _db: Any
    MARK = "?"

    def closed_days(self) -> list[date]:
        raise NotImplementedError  # pragma: no cover - provided by each backend

    def list_meters(self, region: str | None = None) -> list[MeterRecord]:
        """All meters (of one region), ordered by id."""
        sql = "SELECT meter_id, name, fin_no, region FROM meters"
        if region is None:
            rows = self._db.execute(sql + " ORDER BY meter_id")
        elif region == UNASSIGNED:
            rows = self._db.execute(sql + " WHERE region IS NULL ORDER BY meter_id")
        else:
            rows = self._db.execute(sql + f" WHERE region = {self.MARK} ORDER BY meter_id",
                                    (region,))
        return [MeterRecord(*row) for row in rows]

    def region_first_days(self) -> list[tuple[str, date, int]]:
        """(region, first day, meters) of the meters with data: one scan of the meters'
        (region, first_day) index, never of the readings."""
        rows = self._db.execute(
            f"""SELECT COALESCE(region, '{UNASSIGNED}'), first_day, COUNT(*) FROM meters
                WHERE first_day IS NOT NULL GROUP BY region, first_day
                ORDER BY 1, 2""")
        return [(str(region), day_of_number(int(number)), int(count))
                for region, number, count in rows]

    def day_total_columns(self, day: date) -> Columns:
        """Every meter's total of a closed day: (meter_ids ascending, energy_wh, readings)."""
        return self._day_totals_of_table(day_number(day))

    def _day_totals_of_table(self, number: int) -> Columns:
        return rows_as_columns(self._db.execute(
            f"SELECT meter_id, energy_wh, readings FROM daily_totals WHERE day = {self.MARK}"
            " ORDER BY meter_id", (number,)).fetchall())

    def days_with_readings(self) -> list[date]:
        """Every day with at least one stored reading, skipping through the day index."""
        rows = self._db.execute(
            """WITH RECURSIVE days (day) AS (
                 SELECT MIN(day) FROM day_readings
                 UNION ALL
                 SELECT (SELECT MIN(day) FROM day_readings WHERE day > days.day) FROM days
                 WHERE days.day IS NOT NULL)
               SELECT day FROM days WHERE day IS NOT NULL""")
        return [day_of_number(number) for (number,) in rows]

    def days_with_open_readings(self, before: date) -> list[date]:
        """Days before ``before`` that have readings but were never closed."""
        closed = set(self.closed_days())
        return [day for day in self.days_with_readings() if day < before and day not in closed]

    def _with_open_days(self, found: dict[date, SlotSums], region: str, first: date,
                        last: date) -> list[tuple[date, int, int, int]]:
        """``region_slot_energy`` from the closed days' sums in ``found``: the days with
        readings that are not closed are summed from the region's packed rows (a closed day
        without sums had no reading of the region); one row per slot held."""
        closed = set(self.closed_days())
        for day in self.days_with_readings():
            if first <= day <= last and day not in found and day not in closed:
                found[day] = self._open_region_slots(region, day)
        result: list[tuple[date, int, int, int]] = []
        for day in sorted(found):
            sums, counts = found[day]
            result.extend((day, slot, int(sums[slot]), int(counts[slot]))
                          for slot in range(SLOTS_PER_DAY) if counts[slot])
        return result

    def _open_region_slots(self, region: str, day: date) -> SlotSums:
        """Per slot of one day not closed: the region's energy and readings, from its rows."""
        test = "m.region IS NULL" if region == UNASSIGNED else f"m.region = {self.MARK}"
        params: tuple[object, ...] = (day_number(day),) + (() if region == UNASSIGNED
                                                           else (region,))
        blobs = [bytes(blob) for (blob,) in self._blob_cursor().execute(
            f"""SELECT r.slots_wh FROM day_readings r LEFT JOIN meters m USING (meter_id)
                WHERE r.day = {self.MARK} AND {test}""", params)]
        values = unpack_rows(blobs)
        present = values != MISSING
        return (np.where(present, values, 0).sum(axis=0, dtype=np.int64),
                present.sum(axis=0, dtype=np.int64))

    def _blob_cursor(self) -> Any:
        """A cursor that returns blobs as bytes."""
        return self._db
