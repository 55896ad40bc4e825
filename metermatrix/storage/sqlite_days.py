"""Closed days in SQLite: the close, daily and per-region totals, and their amendments."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from metermatrix.storage.base import UNASSIGNED, DailyTotal, RegionDay
from metermatrix.storage.packing import (
    day_number,
    day_of_number,
    group_slot_sums,
    row_totals,
    unpack_rows,
)
from metermatrix.storage.sqltables import Columns
from metermatrix.storage.totalcolumns import TotalColumns

_SUMS = np.dtype("<i8")
_COUNTS = np.dtype("<i4")


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DayTables(TotalColumns):
    """The day methods of SQLiteStorage (a mixin over its connection ``_db``)."""

    _db: sqlite3.Connection

    def transaction(self) -> object:  # pragma: no cover - provided by SQLiteStorage
        raise NotImplementedError

    def day_matrix(self, day: date) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def meter_ids(self) -> npt.NDArray[np.int64]:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def _is_closed(self, day: date) -> bool:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    #: What ``_is_closed`` learned in the write transaction under way (SQLiteStorage).
    _closed_in_transaction: dict[date, bool]

    # -- regions of meters ------------------------------------------------------
    def region_of_meters(self, meter_ids: npt.NDArray[np.int64]) -> list[str]:
        """The region of each meter (UNASSIGNED without one), in the order given."""
        if len(meter_ids) > 5_000:  # a whole day: one pass over the meters table
            rows = self._db.execute(
                f"SELECT meter_id, COALESCE(region, '{UNASSIGNED}') FROM meters ORDER BY 1")
            pairs = rows.fetchall()
            known = np.array([m for m, _ in pairs], dtype=np.int64)
            names = [r for _, r in pairs]
            at = np.searchsorted(known, meter_ids)
            return [names[i] if i < len(known) and known[i] == m else UNASSIGNED
                    for i, m in zip(at.tolist(), meter_ids.tolist(), strict=True)]
        found: dict[int, str] = {}
        ids = [int(m) for m in meter_ids]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            found.update(self._db.execute(
                f"SELECT meter_id, COALESCE(region, '{UNASSIGNED}') FROM meters"
                f" WHERE meter_id IN ({','.join('?' * len(part))})", part))
        return [found.get(m, UNASSIGNED) for m in ids]

    def meters_by_region(self) -> dict[str, npt.NDArray[np.int64]]:
        """Every meter's id, ascending, under its region (UNASSIGNED for meters without one)."""
        groups: dict[str, npt.NDArray[np.int64]] = {}
        # One text of ids per region, parsed by numpy: 1.4 M rows fetched one by one as
        # Python ints took 3x as long (a covering scan of the region index either way).
        for region, text in self._db.execute(
                "SELECT region, group_concat(meter_id) FROM meters GROUP BY region"):
            ids = np.sort(np.fromstring(text, dtype=np.int64, sep=","))
            groups[UNASSIGNED if region is None else region] = ids
        return groups

    def _region_codes(self, meter_ids: npt.NDArray[np.int64]
                      ) -> tuple[list[str], npt.NDArray[np.int64]]:
        """Region names, and the index into them of each meter's region, in the order given."""
        if len(meter_ids) <= 5_000:
            found = self.region_of_meters(meter_ids)
            names = sorted(set(found))
            return names, np.array([names.index(n) for n in found], np.int64)
        groups = self.meters_by_region()  # a whole day: one column of ids per region
        names = sorted({*groups, UNASSIGNED})
        held = [name for name in names if name in groups]
        none = [np.zeros(0, np.int64)]
        known = np.concatenate([groups[name] for name in held] + none)
        codes = np.concatenate(
            [np.full(len(groups[name]), names.index(name), np.int64) for name in held] + none)
        order = np.argsort(known, kind="stable")
        known, codes = known[order], codes[order]
        at = np.minimum(np.searchsorted(known, meter_ids), max(len(known) - 1, 0))
        hit = known[at] == meter_ids if len(known) else np.zeros(len(meter_ids), bool)
        return names, np.where(hit, codes[at] if len(known) else 0, names.index(UNASSIGNED))

    def _region_slot_sums(self, meter_ids: npt.NDArray[np.int64], values: npt.NDArray[np.uint16],
                          regions: tuple[list[str], npt.NDArray[np.int64]] | None = None
                          ) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """{region: (energy_wh per slot, readings per slot)} over the rows given."""
        names, codes = regions if regions is not None else self._region_codes(meter_ids)
        energy, readings = group_slot_sums(codes, len(names), values)
        return {names[code]: (energy[code], readings[code]) for code in np.unique(codes).tolist()}

    # -- the close --------------------------------------------------------------
    def close_day(self, day: date, totals: Iterable[tuple[int, int, int]]) -> None:
        """Record (meter_id, energy_wh, readings) totals for ``day`` and mark it closed."""
        number, rows = day_number(day), list(totals)
        with self.transaction():  # type: ignore[attr-defined]
            self._db.executemany(
                "INSERT OR REPLACE INTO daily_totals (day, meter_id, energy_wh, readings)"
                " VALUES (?, ?, ?, ?)",
                ((number, meter_id, wh, n) for meter_id, wh, n in rows),
            )
            self._note_first_day(number, [meter_id for meter_id, _, _ in rows])
            self._mark_closed(day)

    def _note_first_day(self, number: int, meter_ids: Iterable[int]) -> None:
        """Move the first day of meters given totals of day ``number`` without readings."""
        self._db.executemany(
            "UPDATE meters SET first_day = ?1"
            " WHERE meter_id = ?2 AND (first_day IS NULL OR first_day > ?1)",
            ((number, meter_id) for meter_id in meter_ids))

    def close_day_from_readings(
        self, day: date,
        rows: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]] | None = None
    ) -> int:
        """Close ``day`` from its stored readings; returns the number of meters totalled.

        ``rows``: the day's rows as today's store holds them (meter_ids ascending), which
        the group commits wrote; None: read from day_readings.
        """
        number = day_number(day)
        with self.transaction():  # type: ignore[attr-defined]
            earlier = self._db.execute(
                "SELECT 1 FROM daily_totals WHERE day = ? LIMIT 1", (number,)).fetchone()
            if rows is None:
                ids, values, regions = self._day_rows_by_region(day)
            else:
                (ids, values), regions = rows, self._region_codes(rows[0])
            energy, counts = self._total_readings(day, ids, values)
            keep = counts > 0
            if earlier is not None:  # imported totals too: count every row of the day
                self._mark_closed(day, (ids, values), regions)
                (totalled,) = self._db.execute(
                    "SELECT COUNT(*) FROM daily_totals WHERE day = ?", (number,)).fetchone()
                return int(totalled)
            self._mark_closed(day, (ids, values), regions,
                              _region_days(regions, energy[keep], counts[keep], keep),
                              (ids[keep], energy[keep], counts[keep]))
        return int(keep.sum())

    def _day_rows_by_region(self, day: date
                            ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16],
                                       tuple[list[str], npt.NDArray[np.int64]]]:
        """(ids, (meters, 48) readings, (region names, each row's index into them)) of ``day``.

        Each row's region comes with it in one pass: the join looks the meter up by its
        key, and the region arrives as a small integer rather than as a string.
        """
        found = [region for (region,) in self._db.execute(
            "SELECT DISTINCT region FROM meters WHERE region IS NOT NULL")]
        names = sorted({*found, UNASSIGNED})
        cases = " ".join(f"WHEN ? THEN {names.index(name)}" for name in found)
        cursor = self._db.execute(
            f"""SELECT d.meter_id, d.slots_wh,
                       {f"CASE m.region {cases} ELSE {names.index(UNASSIGNED)} END"
                        if found else names.index(UNASSIGNED)}
                FROM day_readings d LEFT JOIN meters m USING (meter_id)
                WHERE d.day = ? ORDER BY d.meter_id""", (*found, day_number(day)))
        ids: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)]
        codes: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)]
        blobs: list[bytes] = []
        while rows := cursor.fetchmany(100_000):
            ids.append(np.fromiter(map(itemgetter(0), rows), np.int64, len(rows)))
            blobs.append(b"".join(map(itemgetter(1), rows)))
            codes.append(np.fromiter(map(itemgetter(2), rows), np.int64, len(rows)))
        return np.concatenate(ids), unpack_rows(blobs), (names, np.concatenate(codes))

    def _total_readings(self, day: date, ids: npt.NDArray[np.int64],
                        values: npt.NDArray[np.uint16]
                        ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Store each meter's total of ``day`` from its rows; returns (energy_wh, readings)."""
        energy, counts = row_totals(values)
        keep = counts > 0
        self._db.executemany(
            f"INSERT OR REPLACE INTO daily_totals (day, meter_id, energy_wh, readings)"
            f" VALUES ({day_number(day)}, ?, ?, ?)",
            zip(ids[keep].tolist(), energy[keep].tolist(), counts[keep].tolist(), strict=True),
        )
        return energy, counts

    def _mark_closed(self, day: date,
                     matrix: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]] | None = None,
                     regions: tuple[list[str], npt.NDArray[np.int64]] | None = None,
                     region_days: list[tuple[str, int, int, int]] | None = None,
                     totals: Columns | None = None) -> None:
        """Write the day's region figures and totals columns, and mark it closed.

        ``region_days`` (region, energy_wh, meters, readings) and ``totals`` (every
        meter's) when the caller has them; otherwise they are read from the stored totals.
        """
        text, number = day.isoformat(), day_number(day)
        self._db.execute("DELETE FROM region_daily WHERE day = ?", (text,))
        if region_days is None:
            self._db.execute(
                f"""INSERT INTO region_daily (region, day, energy_wh, meters, readings)
                    SELECT COALESCE(m.region, '{UNASSIGNED}'), ?, SUM(t.energy_wh), COUNT(*),
                           SUM(t.readings)
                    FROM daily_totals t LEFT JOIN meters m USING (meter_id)
                    WHERE t.day = ? GROUP BY 1""",
                (text, number),
            )
        else:
            self._db.executemany(
                "INSERT INTO region_daily (region, day, energy_wh, meters, readings)"
                " VALUES (?, ?, ?, ?, ?)",
                ((region, text, wh, meters, n) for region, wh, meters, n in region_days))
        ids, values = matrix if matrix is not None else self.day_matrix(day)
        self._db.execute("DELETE FROM region_slots WHERE day = ?", (text,))
        self._db.executemany(
            "INSERT INTO region_slots (region, day, slots_wh, readings) VALUES (?, ?, ?, ?)",
            ((region, text, sums.astype(_SUMS).tobytes(), counts.astype(_COUNTS).tobytes())
             for region, (sums, counts) in self._region_slot_sums(ids, values, regions).items()),
        )
        self._write_total_columns(number, totals)
        self._db.execute("INSERT OR IGNORE INTO closed_days (day, closed_at) VALUES (?, ?)",
                         (text, _now_text()))
        self._closed_in_transaction.pop(day_of_number(number), None)

    def _amend_closed_day(self, number: int, meter_ids: list[int],
                          before: npt.NDArray[np.uint16], after: npt.NDArray[np.uint16]) -> None:
        """Move a closed day's totals and region figures by the change from before to after."""
        text = day_of_number(number).isoformat()
        energy_0, count_0 = row_totals(before)
        energy_1, count_1 = row_totals(after)
        self._db.executemany(
            """INSERT INTO daily_totals (day, meter_id, energy_wh, readings) VALUES (?, ?, ?, ?)
               ON CONFLICT (day, meter_id) DO UPDATE SET
                 energy_wh = energy_wh + excluded.energy_wh,
                 readings = readings + excluded.readings""",
            zip([number] * len(meter_ids), meter_ids, (energy_1 - energy_0).tolist(),
                (count_1 - count_0).tolist(), strict=True),
        )
        self._note_amended(number, meter_ids)
        ids = np.array(meter_ids, dtype=np.int64)
        regions = self._region_codes(ids)
        old_sums = self._region_slot_sums(ids, before, regions)
        new_sums = self._region_slot_sums(ids, after, regions)
        names, codes = regions
        for code in np.unique(codes).tolist():
            region, mask = names[code], codes == code
            joined = int(((count_0[mask] == 0) & (count_1[mask] > 0)).sum())
            delta_wh = int(energy_1[mask].sum() - energy_0[mask].sum())
            delta_n = int(count_1[mask].sum() - count_0[mask].sum())
            self._db.execute(
                """INSERT INTO region_daily (region, day, energy_wh, meters, readings)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (region, day) DO UPDATE SET
                     energy_wh = energy_wh + excluded.energy_wh,
                     meters = meters + excluded.meters, readings = readings + excluded.readings""",
                (region, text, delta_wh, joined, delta_n))
            self._add_region_slots(region, text, new_sums[region][0] - old_sums[region][0],
                                   new_sums[region][1] - old_sums[region][1])

    def _add_region_slots(self, region: str, text: str, energy: npt.NDArray[np.int64],
                          counts: npt.NDArray[np.int64]) -> None:
        row = self._db.execute(
            "SELECT slots_wh, readings FROM region_slots WHERE region = ? AND day = ?",
            (region, text)).fetchone()
        if row is not None:
            energy = energy + np.frombuffer(row[0], _SUMS)
            counts = counts + np.frombuffer(row[1], _COUNTS)
        self._db.execute(
            "INSERT OR REPLACE INTO region_slots (region, day, slots_wh, readings)"
            " VALUES (?, ?, ?, ?)",
            (region, text, energy.astype(_SUMS).tobytes(), counts.astype(_COUNTS).tobytes()))

    # -- days -------------------------------------------------------------------
    def closed_days(self) -> list[date]:
        """All closed days, oldest first."""
        rows = self._db.execute("SELECT day FROM closed_days ORDER BY day")
        return [date.fromisoformat(day) for (day,) in rows]

    def _totals_rows(self, meter_ids: Sequence[int] | None, first: date, last: date
                     ) -> Iterator[tuple[int, int, int, int]]:
        span = (day_number(first), day_number(last))
        if meter_ids is None:
            yield from self._db.execute(
                "SELECT meter_id, day, energy_wh, readings FROM daily_totals"
                " WHERE day BETWEEN ? AND ? ORDER BY day, meter_id", span)
            return
        for meter_id in meter_ids:
            for number, wh, n in self._days_of_meter(  # type: ignore[attr-defined]
                    "daily_totals", "t.energy_wh, t.readings", meter_id, first, last):
                yield meter_id, number, wh, n

    def daily_totals_between(
        self, meter_ids: Sequence[int] | None, first: date, last: date
    ) -> list[DailyTotal]:
        """Daily totals of some meters (None: all) for days ``first``..``last``."""
        return [DailyTotal(m, day_of_number(d), wh, n)
                for m, d, wh, n in self._totals_rows(meter_ids, first, last)]

    def region_days_between(self, first: date, last: date) -> list[RegionDay]:
        """Per-region daily totals for days ``first``..``last``."""
        rows = self._db.execute(
            """SELECT region, day, energy_wh, meters, readings FROM region_daily
               WHERE day BETWEEN ? AND ? ORDER BY day, region""",
            (first.isoformat(), last.isoformat()),
        )
        return [RegionDay(r, date.fromisoformat(d), wh, m, n) for r, d, wh, m, n in rows]

    def region_slot_energy(
        self, region: str, first: date, last: date
    ) -> list[tuple[date, int, int, int]]:
        """Per (day, slot) of a region: (day, slot, energy_wh, readings) over its meters.

        Closed days come from the region_slots table; other days are summed from the
        region's packed rows.
        """
        found: dict[date, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        for text, sums, counts in self._db.execute(
                "SELECT day, slots_wh, readings FROM region_slots"
                " WHERE region = ? AND day BETWEEN ? AND ?",
                (region, first.isoformat(), last.isoformat())):
            found[date.fromisoformat(text)] = (np.frombuffer(sums, _SUMS).astype(np.int64),
                                               np.frombuffer(counts, _COUNTS).astype(np.int64))
        return self._with_open_days(found, region, first, last)

    def import_daily_totals(self, totals: Iterable[DailyTotal]) -> None:
        """Load historic daily totals and mark their days closed.

        A day not closed yet is first totalled from its stored readings, so that marking
        it closed leaves none of them out of its totals.
        """
        by_day: dict[date, list[DailyTotal]] = {}
        for total in totals:
            by_day.setdefault(total.day, []).append(total)
        with self.transaction():  # type: ignore[attr-defined]
            for day in sorted(by_day):
                if not self._is_closed(day):
                    self._total_readings(day, *self.day_matrix(day))
                self._db.executemany(
                    "INSERT OR REPLACE INTO daily_totals (day, meter_id, energy_wh, readings)"
                    " VALUES (?, ?, ?, ?)",
                    ((day_number(day), t.meter_id, t.energy_wh, t.readings) for t in by_day[day]),
                )
                self._note_first_day(day_number(day), (t.meter_id for t in by_day[day]))
                self._mark_closed(day)

    # -- dashboards -------------------------------------------------------------
    def meter_day_readings(self, day: date) -> list[tuple[int, int, int]]:
        """Per meter with readings on ``day``: (meter_id, energy_wh, readings), from readings."""
        ids, values = self.day_matrix(day)
        energy, counts = row_totals(values)
        keep = counts > 0
        return list(zip(ids[keep].tolist(), energy[keep].tolist(), counts[keep].tolist(),
                        strict=True))

    def meter_totals_between(self, first: date, last: date) -> list[tuple[int, int, int]]:
        """Per meter: (meter_id, energy_wh, readings) summed over daily totals first..last."""
        rows = self._db.execute(
            """SELECT t.meter_id, SUM(t.energy_wh), SUM(t.readings)
               FROM daily_totals t JOIN meters m USING (meter_id)
               WHERE t.day BETWEEN ? AND ? GROUP BY t.meter_id ORDER BY t.meter_id""",
            (day_number(first), day_number(last)),
        )
        return [(int(m), int(wh), int(n)) for m, wh, n in rows]

    def region_meter_counts(self) -> dict[str, int]:
        """How many meters each region has (UNASSIGNED for meters without a region)."""
        rows = self._db.execute(
            f"SELECT COALESCE(region, '{UNASSIGNED}'), COUNT(*) FROM meters GROUP BY 1"
        )
        return {str(region): int(count) for region, count in rows}

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(version)


def _region_days(regions: tuple[list[str], npt.NDArray[np.int64]], energy: npt.NDArray[np.int64],
                 counts: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]
                 ) -> list[tuple[str, int, int, int]]:
    """(region, energy_wh, meters, readings) of each region with a meter totalled."""
    names, codes = regions
    kept = codes[keep]
    meters = np.bincount(kept, minlength=len(names))
    # Exact: float64 weights hold every integer below 2**53.
    wh = np.bincount(kept, weights=energy, minlength=len(names)).astype(np.int64)
    readings = np.bincount(kept, weights=counts, minlength=len(names)).astype(np.int64)
    return [(names[code], int(wh[code]), int(meters[code]), int(readings[code]))
            for code in np.flatnonzero(meters).tolist()]
