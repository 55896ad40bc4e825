"""Closed days in PostgreSQL: the close, daily and per-region totals, amendments, partitions.

``day_readings`` and ``daily_totals`` are partitioned by month of their day number.
The server makes the partitions of this month and the next ones at start and at each
close (``prepare_days``); a write to another month (an import of old totals, a late
reading across a month end) makes its month's partitions first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import UNASSIGNED, DailyTotal, RegionDay
from metermatrix.storage.packing import MISSING, day_number, day_of_number, row_totals
from metermatrix.storage.sqltables import Columns, SQLTables, rows_as_columns

_SUMS = np.dtype("<i8")
_COUNTS = np.dtype("<i4")
#: The tables partitioned by month of ``day``.
PARTITIONED = ("day_readings", "daily_totals")
#: Partitions made ahead of the open day's month, at start and at each close.
MONTHS_AHEAD = 2
#: Advisory lock key held while partitions are made (several processes may write at once).
PARTITION_LOCK = 0x4D4D_0002
#: First key of the per-day advisory locks (the second is the day number): a write of a
#: day's readings holds it shared, the day's close exclusive, so that a reading committed
#: by another process while the day closes is either in the close or amends it after.
DAY_LOCK = 0x4D4D


def month_span(number: int) -> tuple[date, int, int]:
    """(first day of the month, its day number, the next month's) for a day number."""
    first = day_of_number(number).replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, day_number(first), day_number(following)


class PostgresDays(SQLTables):
    """The day methods of PostgresStorage (a mixin over its connection ``_db``)."""

    _db: psycopg.Connection[Any]
    _months: set[int]
    url: str

    _depth: int

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def day_matrix(self, day: date) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresReadings

    # -- partitions -----------------------------------------------------------------
    def _ensure_month(self, number: int) -> None:
        """Make the month partitions holding day ``number`` unless known to exist.

        Made inside the caller's transaction, a new partition locks its table until the
        transaction ends; the server makes its months ahead (``prepare_days``), so this
        happens only for writes to other months (imports, migrations).
        """
        first, low, high = month_span(number)
        if low in self._months:
            return
        names = [f"{table}_{first:%Y_%m}" for table in PARTITIONED]
        row = self._db.execute("SELECT bool_and(to_regclass(name) IS NOT NULL)"
                               " FROM unnest(%s::text[]) AS name", (names,)).fetchone()
        if not (row and row[0]):
            with self.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
                for table, name in zip(PARTITIONED, names, strict=True):
                    fill = " WITH (fillfactor = 80)" if table == "day_readings" else ""
                    self._db.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}"
                                     f" FOR VALUES FROM ({low}) TO ({high}){fill}")
            if self._depth:
                return  # known only once the caller's transaction has committed
        self._months.add(low)

    def prepare_days(self, day: date) -> None:
        """Make the partitions of ``day``'s month, the month before (late readings) and the
        MONTHS_AHEAD months after it, each committed at once."""
        number = month_span(month_span(day_number(day))[1] - 1)[1]
        for _ in range(MONTHS_AHEAD + 2):
            self._ensure_month(number)
            number = month_span(number)[2]

    def _lock_day(self, number: int, exclusive: bool = False) -> None:
        """Hold day ``number``'s advisory lock until the transaction ends."""
        kind = "" if exclusive else "_shared"
        self._db.execute(f"SELECT pg_advisory_xact_lock{kind}(%s, %s)", (DAY_LOCK, number))

    # -- regions of meters ----------------------------------------------------------
    def region_of_meters(self, meter_ids: npt.NDArray[np.int64]) -> list[str]:
        """The region of each meter (UNASSIGNED without one), in the order given."""
        ids = [int(m) for m in meter_ids]
        found = dict(self._db.execute(
            "SELECT meter_id, COALESCE(region, %s) FROM meters WHERE meter_id = ANY(%s)",
            (UNASSIGNED, ids)).fetchall())
        return [str(found.get(m, UNASSIGNED)) for m in ids]

    def meters_by_region(self) -> dict[str, npt.NDArray[np.int64]]:
        """Every meter's id, ascending, under its region (UNASSIGNED for meters without one)."""
        rows = self._db.execute("SELECT COALESCE(region, %s), array_agg(meter_id ORDER BY"
                                " meter_id) FROM meters GROUP BY 1", (UNASSIGNED,)).fetchall()
        return {str(region): np.array(ids, dtype=np.int64) for region, ids in rows}

    def _region_slot_sums(self, meter_ids: npt.NDArray[np.int64], values: npt.NDArray[np.uint16]
                          ) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """{region: (energy_wh per slot, readings per slot)} over the rows given."""
        names = np.array(self.region_of_meters(meter_ids), dtype=object)
        present = values != MISSING
        energy = np.where(present, values, 0).astype(np.int64)
        return {region: (energy[names == region].sum(axis=0),
                         present[names == region].sum(axis=0, dtype=np.int64))
                for region in sorted(set(names.tolist()))}

    # -- the close ------------------------------------------------------------------
    def _put_totals(self, number: int, totals: Iterable[tuple[int, int, int]]) -> None:
        """Replace daily totals of one day with (meter_id, energy_wh, readings), by COPY."""
        self._ensure_month(number)
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS staged_totals (meter_id bigint,"
                         " energy_wh bigint, readings integer) ON COMMIT DELETE ROWS")
        with self._db.cursor() as cursor:
            with cursor.copy("COPY staged_totals FROM STDIN") as copy:
                for row in totals:
                    copy.write_row(row)
            cursor.execute(
                """INSERT INTO daily_totals (meter_id, day, energy_wh, readings)
                   SELECT meter_id, %s, energy_wh, readings FROM staged_totals
                   ON CONFLICT (meter_id, day) DO UPDATE SET energy_wh = excluded.energy_wh,
                     readings = excluded.readings""", (number,))
            cursor.execute("TRUNCATE staged_totals")

    def close_day(self, day: date, totals: Iterable[tuple[int, int, int]]) -> None:
        """Record (meter_id, energy_wh, readings) totals for ``day`` and mark it closed."""
        with self.transaction():
            self._lock_day(day_number(day), exclusive=True)
            self._put_totals(day_number(day), totals)
            self._mark_closed(day)

    def close_day_from_readings(
        self, day: date,
        rows: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]] | None = None
    ) -> int:
        """Close ``day`` from its stored readings; returns the number of meters totalled.

        The rows are read under the day's lock whether or not ``rows`` are given: other
        processes may have written the day.
        """
        with self.transaction():
            self._lock_day(day_number(day), exclusive=True)
            matrix = self._total_readings(day)
            self._mark_closed(day, matrix)
            row = self._db.execute("SELECT COUNT(*) FROM daily_totals WHERE day = %s",
                                   (day_number(day),)).fetchone()
        return int(row[0]) if row else 0

    def _total_readings(self, day: date
                        ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        """Each meter's total of ``day`` from its stored readings; returns the day's matrix."""
        ids, values = self.day_matrix(day)
        energy, counts = row_totals(values)
        keep = counts > 0
        self._put_totals(day_number(day), zip(ids[keep].tolist(), energy[keep].tolist(),
                                              counts[keep].tolist(), strict=True))
        return ids, values

    def _mark_closed(self, day: date,
                     matrix: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]] | None = None
                     ) -> None:
        self._db.execute("DELETE FROM region_daily WHERE day = %s", (day,))
        self._db.execute(
            """INSERT INTO region_daily (region, day, energy_wh, meters, readings)
               SELECT COALESCE(m.region, %s), %s, SUM(t.energy_wh), COUNT(*), SUM(t.readings)
               FROM daily_totals t LEFT JOIN meters m USING (meter_id)
               WHERE t.day = %s GROUP BY 1""", (UNASSIGNED, day, day_number(day)))
        ids, values = matrix if matrix is not None else self.day_matrix(day)
        self._db.execute("DELETE FROM region_slots WHERE day = %s", (day,))
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO region_slots (region, day, slots_wh, readings)"
                " VALUES (%s, %s, %s, %s)",
                [(region, day, sums.astype(_SUMS).tobytes(), counts.astype(_COUNTS).tobytes())
                 for region, (sums, counts) in self._region_slot_sums(ids, values).items()])
        self._db.execute("INSERT INTO closed_days (day) VALUES (%s) ON CONFLICT DO NOTHING",
                         (day,))

    def _amend_closed_day(self, number: int, meter_ids: list[int],
                          before: npt.NDArray[np.uint16], after: npt.NDArray[np.uint16]) -> None:
        """Move a closed day's totals and region figures by the change from before to after."""
        day = day_of_number(number)
        energy_0, count_0 = row_totals(before)
        energy_1, count_1 = row_totals(after)
        self._ensure_month(number)
        with self._db.cursor() as cursor:
            cursor.executemany(
                """INSERT INTO daily_totals AS t (meter_id, day, energy_wh, readings)
                   VALUES (%s, %s, %s, %s) ON CONFLICT (meter_id, day) DO UPDATE SET
                     energy_wh = t.energy_wh + excluded.energy_wh,
                     readings = t.readings + excluded.readings""",
                list(zip(meter_ids, [number] * len(meter_ids), (energy_1 - energy_0).tolist(),
                         (count_1 - count_0).tolist(), strict=True)))
        ids = np.array(meter_ids, dtype=np.int64)
        names = self.region_of_meters(ids)
        old_sums = self._region_slot_sums(ids, before)
        new_sums = self._region_slot_sums(ids, after)
        for region in sorted(set(names)):
            mask = np.array([name == region for name in names])
            self._db.execute(
                """INSERT INTO region_daily AS d (region, day, energy_wh, meters, readings)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT (region, day) DO UPDATE SET
                     energy_wh = d.energy_wh + excluded.energy_wh,
                     meters = d.meters + excluded.meters, readings = d.readings + excluded.readings
                """, (region, day, int(energy_1[mask].sum() - energy_0[mask].sum()),
                      int(((count_0[mask] == 0) & (count_1[mask] > 0)).sum()),
                      int(count_1[mask].sum() - count_0[mask].sum())))
            self._add_region_slots(region, day, new_sums[region][0] - old_sums[region][0],
                                   new_sums[region][1] - old_sums[region][1])

    def _add_region_slots(self, region: str, day: date, energy: npt.NDArray[np.int64],
                          counts: npt.NDArray[np.int64]) -> None:
        """Add to a region's half-hour sums of a closed day (the row locked meanwhile)."""
        zeros = np.zeros(SLOTS_PER_DAY, np.int64)
        self._db.execute("INSERT INTO region_slots (region, day, slots_wh, readings)"
                         " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                         (region, day, zeros.astype(_SUMS).tobytes(),
                          zeros.astype(_COUNTS).tobytes()))
        row = self._db.cursor(binary=True).execute(
            "SELECT slots_wh, readings FROM region_slots WHERE region = %s AND day = %s"
            " FOR UPDATE", (region, day)).fetchone()
        assert row is not None
        energy = energy + np.frombuffer(row[0], _SUMS)
        counts = counts + np.frombuffer(row[1], _COUNTS)
        self._db.execute("UPDATE region_slots SET slots_wh = %s, readings = %s"
                         " WHERE region = %s AND day = %s",
                         (energy.astype(_SUMS).tobytes(), counts.astype(_COUNTS).tobytes(),
                          region, day))

    # -- days -------------------------------------------------------------------
    def closed_days(self) -> list[date]:
        """All closed days, oldest first."""
        return [day for (day,) in self._db.execute(
            "SELECT day FROM closed_days ORDER BY day")]

    def _totals_rows(self, meter_ids: Sequence[int] | None, first: date, last: date
                     ) -> Iterator[tuple[int, int, int, int]]:
        span = (day_number(first), day_number(last))
        if meter_ids is None:
            yield from self._db.execute(
                "SELECT meter_id, day, energy_wh, readings FROM daily_totals"
                " WHERE day BETWEEN %s AND %s ORDER BY day, meter_id", span)
            return
        rows = self._db.execute(
            "SELECT meter_id, day, energy_wh, readings FROM daily_totals WHERE meter_id ="
            " ANY(%s) AND day BETWEEN %s AND %s ORDER BY meter_id, day",
            ([int(m) for m in meter_ids], *span)).fetchall()
        by_meter: dict[int, list[tuple[int, int, int, int]]] = {}
        for row in rows:
            by_meter.setdefault(int(row[0]), []).append(row)
        for meter_id in meter_ids:
            yield from by_meter.get(int(meter_id), [])

    def daily_totals_between(
        self, meter_ids: Sequence[int] | None, first: date, last: date
    ) -> list[DailyTotal]:
        """Daily totals of some meters (None: all) for days ``first``..``last``."""
        return [DailyTotal(m, day_of_number(d), wh, n)
                for m, d, wh, n in self._totals_rows(meter_ids, first, last)]

    def region_days_between(self, first: date, last: date) -> list[RegionDay]:
        """Per-region daily totals for days ``first``..``last``."""
        rows = self._db.execute(
            "SELECT region, day, energy_wh, meters, readings FROM region_daily"
            " WHERE day BETWEEN %s AND %s ORDER BY day, region", (first, last))
        return [RegionDay(*row) for row in rows]

    def region_slot_energy(
        self, region: str, first: date, last: date
    ) -> list[tuple[date, int, int, int]]:
        """Per (day, slot) of a region: (day, slot, energy_wh, readings) over its meters."""
        found: dict[date, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        for day, sums, counts in self._db.cursor(binary=True).execute(
                "SELECT day, slots_wh, readings FROM region_slots"
                " WHERE region = %s AND day BETWEEN %s AND %s", (region, first, last)):
            found[day] = (np.frombuffer(sums, _SUMS).astype(np.int64),
                          np.frombuffer(counts, _COUNTS).astype(np.int64))
        return self._with_open_days(found, region, first, last)

    def _blob_cursor(self) -> Any:
        """A cursor that returns bytea as bytes."""
        return self._db.cursor(binary=True)

    def import_daily_totals(self, totals: Iterable[DailyTotal]) -> None:
        """Load historic daily totals and mark their days closed (open days totalled first)."""
        by_day: dict[date, list[DailyTotal]] = {}
        for total in totals:
            by_day.setdefault(total.day, []).append(total)
        with self.transaction():
            closed = set(self.closed_days())
            for day in sorted(by_day):
                self._lock_day(day_number(day), exclusive=True)
                if day not in closed:
                    self._total_readings(day)
                self._put_totals(day_number(day), ((t.meter_id, t.energy_wh, t.readings)
                                                   for t in by_day[day]))
                self._mark_closed(day)

    # -- dashboards -------------------------------------------------------------
    def meter_day_readings(self, day: date) -> list[tuple[int, int, int]]:
        """Per meter with readings on ``day``: (meter_id, energy_wh, readings), from readings."""
        ids, values = self.day_matrix(day)
        energy, counts = row_totals(values)
        keep = counts > 0
        return list(zip(ids[keep].tolist(), energy[keep].tolist(), counts[keep].tolist(),
                        strict=True))

    def day_total_columns(self, day: date) -> Columns:
        """Every meter's total of a closed day: (meter_ids ascending, energy_wh, readings).

        Copied out as CSV and parsed by numpy: 1.4 M rows fetched as Python tuples take
        several times as long.
        """
        with self._db.cursor() as cursor, cursor.copy(
                "COPY (SELECT meter_id, energy_wh, readings FROM daily_totals"
                f" WHERE day = {day_number(day):d} ORDER BY meter_id) TO STDOUT (FORMAT csv)"
        ) as copy:
            text = b"".join(bytes(chunk) for chunk in copy).strip().replace(b"\n", b",")
        return rows_as_columns(np.fromstring(text.decode(), dtype=np.int64, sep=",")
                               if text else np.zeros(0, np.int64))

    def meter_totals_between(self, first: date, last: date) -> list[tuple[int, int, int]]:
        """Per meter: (meter_id, energy_wh, readings) summed over daily totals first..last."""
        rows = self._db.execute(
            """SELECT t.meter_id, SUM(t.energy_wh), SUM(t.readings)
               FROM daily_totals t JOIN meters m USING (meter_id)
               WHERE t.day BETWEEN %s AND %s GROUP BY t.meter_id ORDER BY t.meter_id""",
            (day_number(first), day_number(last)))
        return [(int(m), int(wh), int(n)) for m, wh, n in rows]

    def region_meter_counts(self) -> dict[str, int]:
        """How many meters each region has (UNASSIGNED for meters without a region)."""
        rows = self._db.execute("SELECT COALESCE(region, %s), COUNT(*) FROM meters GROUP BY 1",
                                (UNASSIGNED,))
        return {str(region): int(count) for region, count in rows}

    def _is_closed(self, day: date) -> bool:
        return self._db.execute("SELECT 1 FROM closed_days WHERE day = %s",
                                (day,)).fetchone() is not None

    def data_version(self) -> int:
        """The server's write-ahead log position: moves whenever anything is committed."""
        row = self._db.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        return int(row[0]) if row else 0
