"""PostgreSQL: readings of any day decided as columns, each meter's row locked once.

Several processes may store readings of the same meter-days at once, so the rows are
locked before they are read: one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE false``
of every meter's row, in meter id order, inserts the rows that do not exist yet (with
what the readings alone put in them) and locks those that do, without writing them. In
id order, two processes wait for each other's rows in the same order and never deadlock.
The locked rows are then read, the readings decided with numpy (storage/columns.py) and
the changed rows written by one ``UPDATE ... FROM`` a COPY-filled staging table (a few
rows are sent as arrays instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from metermatrix.arrays import sorted_unique
from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import Outcome, Reading
from metermatrix.storage.columns import Rows, check_energies, decide_day, store_by_day
from metermatrix.storage.packing import MISSING, day_number, pack_marks, pack_rows

_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS staged_day (meter_id bigint, slots_wh bytea,"
          " marks bytea) ON COMMIT DELETE ROWS")

#: Rows from here on go through COPY into ``staged_day``; fewer are sent as arrays.
COPY_FROM_ROWS = 64
_ARRAYS = ("unnest(%s::bigint[], %s::bytea[], %s::bytea[])"
           " AS staged_day (meter_id, slots_wh, marks)")

_INSERT_OR_LOCK = """
INSERT INTO day_readings AS r (meter_id, day, slots_wh, marks)
SELECT meter_id, %s, slots_wh, marks FROM {source} ORDER BY meter_id
ON CONFLICT (meter_id, day) DO UPDATE SET marks = r.marks WHERE false
RETURNING meter_id"""

_UPDATE = """
UPDATE day_readings AS r SET slots_wh = staged_day.slots_wh, marks = staged_day.marks
FROM {source} WHERE r.day = %s AND r.meter_id = staged_day.meter_id"""


class PostgresColumns:
    """``store_day_readings`` of PostgresStorage (a mixin over its connection ``_db``)."""

    _db: psycopg.Connection[Any]

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def _lock_day(self, number: int, exclusive: bool = False) -> None:
        raise NotImplementedError  # pragma: no cover - provided by PostgresDays

    def _is_closed(self, day: date) -> bool:
        raise NotImplementedError  # pragma: no cover - provided by PostgresDays

    def _ensure_month(self, number: int) -> None:
        raise NotImplementedError  # pragma: no cover - provided by PostgresDays

    def _imported(self, day: int, meter_ids: Sequence[int]) -> set[int]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresReadings

    def _rows_of(self, day: int, meter_ids: Sequence[int], lock: bool = False) -> Rows:
        raise NotImplementedError  # pragma: no cover - provided by PostgresReadings

    def _amend_closed_day(self, number: int, meter_ids: list[int],
                          before: npt.NDArray[np.uint16], after: npt.NDArray[np.uint16]) -> None:
        raise NotImplementedError  # pragma: no cover - provided by PostgresDays

    def add_meters(self, meter_ids: Iterable[int]) -> None:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def store_readings(self, readings: Sequence[Reading]) -> list[Outcome]:
        """``store_reading`` for many readings, in one transaction: per day (oldest first)
        each meter's row locked, read and written once."""
        with self.transaction():
            return store_by_day(self.store_day_readings, readings)

    def store_day_readings(self, day: date, meter_ids: npt.NDArray[np.int64],
                           slots: npt.NDArray[np.int64], energy: npt.NDArray[np.int64]
                           ) -> npt.NDArray[np.int64]:
        """Store one day's readings given as columns; each one's index into ``OUTCOMES``.

        The same answers as ``store_reading`` one after the other, in one transaction.
        """
        check_energies(energy)
        number = day_number(day)
        with self.transaction():
            self._lock_day(number)
            closed = self._is_closed(day)
            self._ensure_month(number)
            unique = sorted_unique(meter_ids).tolist()
            refused = self._imported(number, unique) if closed else set()
            alone = decide_day(meter_ids, slots, energy, {}, refused, closed)
            inserted = self._insert_or_lock(number, alone.changed_rows())
            old = self._rows_of(number, [m for m in unique if m not in inserted])
            decision = decide_day(meter_ids, slots, energy, old, refused, closed)
            changed = decision.changed_rows()
            self._update_rows(number, {m: row for m, row in changed.items() if m in old})
            self.add_meters(m for m in changed if m not in old)
            if closed and changed:
                ids = list(changed)
                empty = np.full(SLOTS_PER_DAY, MISSING, np.uint16)
                before = np.stack([old[m][0] if m in old else empty for m in ids])
                self._amend_closed_day(number, ids, before,
                                       np.stack([changed[m][0] for m in ids]))
        return decision.codes

    def _insert_or_lock(self, number: int, rows: Rows) -> set[int]:
        """Insert the rows of meters without one on day ``number``, lock the others (in
        meter id order); returns the meters whose rows were inserted."""
        if not rows:
            return set()
        with self._staged(rows) as (source, params), self._db.cursor() as cursor:
            cursor.execute(_INSERT_OR_LOCK.format(source=source), (number, *params))
            return {int(meter_id) for (meter_id,) in cursor.fetchall()}

    def _update_rows(self, number: int, rows: Rows) -> None:
        """Replace rows of day ``number`` already locked by this transaction."""
        if not rows:
            return
        with self._staged(rows) as (source, params):
            self._db.execute(_UPDATE.format(source=source), (*params, number))

    @contextmanager
    def _staged(self, rows: Rows) -> Iterator[tuple[str, tuple[object, ...]]]:
        """(the SQL source of ``rows`` packed as staged_day, its parameters): arrays for a
        few rows, else the COPY-filled temp table (emptied afterwards)."""
        ids = list(rows)
        values = pack_rows(np.stack([rows[m][0] for m in ids]))
        marks = pack_marks(np.stack([rows[m][1] for m in ids]))
        if len(ids) < COPY_FROM_ROWS:
            yield _ARRAYS, (ids, values, marks)
            return
        self._db.execute(_STAGE)
        with self._db.cursor() as cursor, cursor.copy(
                "COPY staged_day (meter_id, slots_wh, marks) FROM STDIN") as copy:
            for row in zip(ids, values, marks, strict=True):
                copy.write_row(row)
        yield "staged_day", ()
        self._db.execute("TRUNCATE staged_day")
