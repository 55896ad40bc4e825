"""Readings in PostgreSQL: packed rows per meter and day, decided by the database.

Whether a reading is stored, a duplicate or a conflict is decided by one
``INSERT ... ON CONFLICT (meter_id, day) DO UPDATE ... WHERE`` the slot is still empty:
the row lock it takes makes the answer the same whichever process asks first. Rows
written in bulk (a group commit, a head-end batch) go through ``COPY`` into a staging
table and are merged slot by slot (``metermatrix_merge_slots``), so a process never
overwrites a reading another one stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import Outcome, Reading, StorageError
from metermatrix.storage.packing import (
    ALL_ON_TIME,
    LATE,
    MISSING,
    ON_TIME,
    day_number,
    day_of_number,
    pack_marks,
    pack_rows,
    unpack_marks,
    unpack_row,
    unpack_rows,
)
from metermatrix.storage.postgres_days import PostgresDays

Row = tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]
#: Below this many rows an executemany (pipelined) beats COPY into a staging table.
_COPY_FROM = 64

_STORE_ONE = """
INSERT INTO day_readings AS r (meter_id, day, slots_wh, marks) VALUES (%s, %s, %s, %s)
ON CONFLICT (meter_id, day) DO UPDATE SET
  slots_wh = overlay(r.slots_wh PLACING substr(excluded.slots_wh, %s, 2) FROM %s FOR 2),
  marks = set_byte(r.marks, %s, (get_byte(r.marks, %s) & ~(3 << %s)) | (%s << %s))
WHERE substr(r.slots_wh, %s, 2) = '\\xffff'::bytea
RETURNING r.slots_wh"""


class PostgresReadings(PostgresDays):
    """The reading methods of PostgresStorage, over the day methods."""

    def add_meters(self, meter_ids: Iterable[int]) -> None:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    # -- reading rows ---------------------------------------------------------------
    def _rows_of(self, day: int, meter_ids: Sequence[int], lock: bool = False
                 ) -> dict[int, Row]:
        """The packed rows of some meters on one day, unpacked: {meter_id: (values, marks)}."""
        rows = self._db.cursor(binary=True).execute(
            "SELECT meter_id, slots_wh, marks FROM day_readings WHERE day = %s"
            " AND meter_id = ANY(%s)" + (" FOR UPDATE" if lock else ""),
            (day, [int(m) for m in meter_ids]))
        return {int(m): (unpack_row(blob), unpack_marks(marks))
                for m, blob, marks in rows}

    def _imported(self, day: int, meter_ids: Sequence[int]) -> set[int]:
        """Meters of ``meter_ids`` whose total of ``day`` was imported without readings."""
        rows = self._db.execute(
            """SELECT t.meter_id FROM daily_totals t WHERE t.day = %s
               AND t.meter_id = ANY(%s) AND NOT EXISTS (
                 SELECT 1 FROM day_readings r WHERE r.meter_id = t.meter_id AND r.day = t.day)""",
            (day, [int(m) for m in meter_ids]))
        return {int(m) for (m,) in rows}

    # -- writing rows -------------------------------------------------------------------
    def _merge_rows(self, day: int, meter_ids: Sequence[int], values: npt.NDArray[np.uint16]
                    ) -> None:
        """Write rows of an open day, filling only the empty slots of rows already stored."""
        if not len(meter_ids):
            return
        self._ensure_month(day)
        merge = """ON CONFLICT (meter_id, day) DO UPDATE
                   SET slots_wh = metermatrix_merge_slots(r.slots_wh, excluded.slots_wh)
                   WHERE r.slots_wh <> excluded.slots_wh"""
        # Rows are locked in meter id order, as every other writer locks them: two
        # processes writing overlapping meters then wait for each other, never deadlock.
        order = np.argsort(np.asarray(meter_ids, np.int64), kind="stable")
        blobs = pack_rows(np.asarray(values)[order])
        ids = np.asarray(meter_ids, np.int64)[order].tolist()
        if len(ids) < _COPY_FROM:
            with self._db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO day_readings AS r (meter_id, day, slots_wh, marks)"
                    " VALUES (%s, %s, %s, %s) " + merge,
                    [(m, day, blob, ALL_ON_TIME) for m, blob in zip(ids, blobs, strict=True)])
            return
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS staged_rows (meter_id bigint,"
                         " slots_wh bytea) ON COMMIT DELETE ROWS")
        with self._db.cursor() as cursor:
            with cursor.copy("COPY staged_rows (meter_id, slots_wh) FROM STDIN") as copy:
                for row in zip(ids, blobs, strict=True):
                    copy.write_row(row)
            cursor.execute(
                "INSERT INTO day_readings AS r (meter_id, day, slots_wh, marks)"
                " SELECT meter_id, %s, slots_wh, %s FROM staged_rows ORDER BY meter_id "
                + merge,
                (day, ALL_ON_TIME))
            cursor.execute("TRUNCATE staged_rows")

    def _write_rows(self, day: int, rows: dict[int, Row], old: dict[int, Row]) -> None:
        """Replace rows of a closed day read (locked) as ``old``, and amend its totals."""
        if not rows:
            return
        self._ensure_month(day)
        ids = list(rows)
        values = np.stack([rows[m][0] for m in ids])
        marks = np.stack([rows[m][1] for m in ids])
        with self._db.cursor() as cursor:
            cursor.executemany(
                """INSERT INTO day_readings (meter_id, day, slots_wh, marks)
                   VALUES (%s, %s, %s, %s) ON CONFLICT (meter_id, day) DO UPDATE
                   SET slots_wh = excluded.slots_wh, marks = excluded.marks""",
                list(zip(ids, [day] * len(ids), pack_rows(values), pack_marks(marks),
                         strict=True)))
        before = np.stack([old[m][0] if m in old else np.full(SLOTS_PER_DAY, MISSING)
                           for m in ids]).astype(np.uint16)
        self._amend_closed_day(day, ids, before, values)

    def add_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings already known to be new; existing slots are kept."""
        by_day: dict[date, list[Reading]] = {}
        for reading in readings:
            _check_energy(reading.energy_wh)
            by_day.setdefault(reading.day, []).append(reading)
        with self.transaction():
            for day, group in by_day.items():
                number = day_number(day)
                self._lock_day(number)
                ids = sorted({r.meter_id for r in group})
                if not self._is_closed(day):
                    values = np.full((len(ids), SLOTS_PER_DAY), MISSING, np.uint16)
                    at = {m: i for i, m in enumerate(ids)}
                    for reading in group:
                        if values[at[reading.meter_id], reading.slot] == MISSING:
                            values[at[reading.meter_id], reading.slot] = reading.energy_wh
                    self._merge_rows(number, ids, values)
                    continue
                old = self._rows_of(number, ids, lock=True)
                changed: dict[int, Row] = {}
                for reading in group:
                    held = changed.get(reading.meter_id) or _copy_or_empty(
                        old.get(reading.meter_id))
                    if held[0][reading.slot] == MISSING:
                        held[0][reading.slot] = reading.energy_wh
                        held[1][reading.slot] = LATE
                    changed[reading.meter_id] = held
                self._write_rows(number, changed, old)

    def put_day_rows(self, day: date, meter_ids: Sequence[int],
                     rows: npt.NDArray[np.uint16]) -> None:
        """Write whole rows of ``day`` from today's store; on a closed day they amend it."""
        number = day_number(day)
        with self.transaction():
            self._lock_day(number)
            if not self._is_closed(day):
                self._merge_rows(number, meter_ids, np.asarray(rows, np.uint16))
                return
            old = self._rows_of(number, meter_ids, lock=True)
            changed: dict[int, Row] = {}
            for meter_id, values in zip(meter_ids, rows, strict=True):
                before = old.get(int(meter_id))
                merged = values.astype(np.uint16)
                marks = np.zeros(SLOTS_PER_DAY, np.uint8)
                if before is not None:
                    merged = np.where(before[0] != MISSING, before[0], merged).astype(np.uint16)
                    marks = before[1].copy()
                changed[int(meter_id)] = (merged, marks)
            self._write_rows(number, changed, old)

    # -- one reading, decided by the database ---------------------------------------------
    def store_reading(self, reading: Reading) -> Outcome:
        """Store one reading of any day; a new one on a closed day amends that day's total."""
        _check_energy(reading.energy_wh)
        number, slot = day_number(reading.day), reading.slot
        with self.transaction():
            self._lock_day(number)
            closed = self._is_closed(reading.day)
            if closed and self._imported(number, [reading.meter_id]):
                return "imported"
            self._ensure_month(number)
            row = self._db.cursor(binary=True).execute(
                _STORE_ONE, _store_params(reading, number, closed)).fetchone()
            if row is None:
                held = self._rows_of(number, [reading.meter_id])[reading.meter_id][0][slot]
                return "duplicate" if held == reading.energy_wh else "conflict"
            self.add_meters([reading.meter_id])
            if closed:
                after = unpack_row(row[0])
                before = after.copy()
                before[slot] = MISSING
                self._amend_closed_day(number, [reading.meter_id], before[None, :],
                                       after[None, :])
            return "stored"

    # -- reading back ---------------------------------------------------------------------
    def day_matrix(self, day: date) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        """(meter_ids, (meters, 48) readings [Wh], MISSING where empty) of ``day``, by id."""
        ids: list[int] = []
        blobs: list[bytes] = []
        with self._db.cursor(binary=True) as cursor:
            cursor.execute("SELECT meter_id, slots_wh FROM day_readings WHERE day = %s"
                           " ORDER BY meter_id", (day_number(day),))
            while rows := cursor.fetchmany(100_000):
                for meter_id, blob in rows:
                    ids.append(meter_id)
                    blobs.append(blob)
        return np.array(ids, dtype=np.int64), unpack_rows(blobs)

    def readings_of_day(self, day: date) -> Iterator[Reading]:
        """Every reading of ``day``."""
        ids, values = self.day_matrix(day)
        rows, slots = np.nonzero(values != MISSING)
        for row, slot in zip(rows.tolist(), slots.tolist(), strict=True):
            yield Reading(int(ids[row]), day, slot, int(values[row, slot]))

    def readings_between(self, meter_ids: Sequence[int], first: date, last: date) -> list[Reading]:
        """Readings of some meters for days ``first``..``last`` inclusive."""
        rows = self._db.cursor(binary=True).execute(
            "SELECT meter_id, day, slots_wh FROM day_readings WHERE meter_id = ANY(%s)"
            " AND day BETWEEN %s AND %s", ([int(m) for m in meter_ids], day_number(first),
                                           day_number(last))).fetchall()
        by_meter: dict[int, list[tuple[int, bytes]]] = {}
        for meter_id, number, blob in rows:
            by_meter.setdefault(int(meter_id), []).append((number, blob))
        found: list[Reading] = []
        for meter_id in meter_ids:
            for number, blob in sorted(by_meter.get(int(meter_id), [])):
                values, day = unpack_row(blob), day_of_number(number)
                found.extend(Reading(int(meter_id), day, int(slot), int(values[slot]))
                             for slot in np.flatnonzero(values != MISSING))
        return found

    def imported_meters(self, day: date, meter_ids: Sequence[int]) -> set[int]:
        """Meters of ``meter_ids`` whose total of ``day`` was imported without readings.

        An import closes its days, so a day not closed has none (one lookup).
        """
        if not meter_ids or not self._is_closed(day):
            return set()
        return self._imported(day_number(day), meter_ids)

    def first_reading_day(self, meter_id: int) -> date | None:
        """The first day with a reading or an imported total of the meter (None: none)."""
        row = self._db.execute(
            "SELECT LEAST((SELECT MIN(day) FROM day_readings WHERE meter_id = %s),"
            " (SELECT MIN(day) FROM daily_totals WHERE meter_id = %s))",
            (meter_id, meter_id)).fetchone()
        return None if row is None or row[0] is None else day_of_number(row[0])


def _store_params(reading: Reading, number: int, closed: bool) -> tuple[object, ...]:
    """The parameters of _STORE_ONE: the row to insert, and where its slot and mark go."""
    slot = reading.slot
    values = np.full(SLOTS_PER_DAY, MISSING, np.uint16)
    values[slot] = reading.energy_wh
    marks = np.zeros(SLOTS_PER_DAY, np.uint8)
    mark = LATE if closed else ON_TIME
    marks[slot] = mark
    at, shift = 2 * slot + 1, 2 * (slot % 4)
    return (reading.meter_id, number, pack_rows(values)[0], pack_marks(marks)[0],
            at, at, slot // 4, slot // 4, shift, mark, shift, at)


def _check_energy(energy_wh: int) -> None:
    if not 0 <= energy_wh < MISSING:
        raise StorageError(f"reading of {energy_wh} Wh is outside 0..{MISSING - 1}")


def _copy_or_empty(found: Row | None) -> Row:
    if found is None:
        return np.full(SLOTS_PER_DAY, MISSING, np.uint16), np.zeros(SLOTS_PER_DAY, np.uint8)
    return found[0].copy(), found[1].copy()
