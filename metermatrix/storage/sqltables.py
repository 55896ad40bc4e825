"""Queries the two SQL backends share word for word but for the parameter placeholder."""

from __future__ import annotations

from datetime import date
from typing import Any

from metermatrix.storage.base import UNASSIGNED, MeterRecord
from metermatrix.storage.packing import day_of_number


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
