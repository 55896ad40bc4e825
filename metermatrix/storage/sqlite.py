"""The master database in one SQLite file (WAL mode, synchronous=FULL).

Half-hourly readings are stored one row per meter and day in packed form (packing.py),
keyed (day, meter_id): a day's rows are written together at the end of the tree, so a
close or a commit touches the same few pages whatever the history behind it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from operator import itemgetter
from pathlib import Path

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage.base import (
    MeterRecord,
    Outcome,
    Reading,
    SessionRecord,
    Storage,
    StorageError,
)
from metermatrix.storage.columns import check_energy
from metermatrix.storage.migrate import migrate_if_needed
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
from metermatrix.storage.sqlite_columns import ColumnReadings
from metermatrix.storage.sqlite_days import DayTables
from metermatrix.storage.sqlite_inserts import OPEN_ROWS_AT_MOST, insert_rows, open_rows_sql

_CHUNK = 500  # ids per IN (...) list


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLiteStorage(DayTables, ColumnReadings, Storage):
    """Storage on one SQLite connection; make one per thread."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            uri = f"file:{path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                migrate_if_needed(self._db, lambda: self._create_schema())
            except sqlite3.Error as error:
                self._db.close()
                raise StorageError(f"cannot open the database {path} for writing: {error}"
                                   " (check that the file and its folder are writable)"
                                   ) from error
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA cache_size = -262144")  # 256 MiB
        self._depth = 0
        #: What ``_is_closed`` learned in the write transaction under way.
        self._closed_in_transaction: dict[date, bool] = {}

    def _create_schema(self) -> None:
        self._db.executescript(resources.files(__package__).joinpath("schema.sql").read_text())
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('database_id', ?)",
                         (uuid.uuid4().hex,))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (nested calls join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StorageError(f"cannot start a transaction: {error}") from error
        self._depth = 1
        try:
            yield
        except sqlite3.Error as error:  # callers handle StorageError, whatever the backend
            self._rollback()
            raise StorageError(f"transaction failed: {error}") from error
        except BaseException:
            self._rollback()
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                raise StorageError(f"commit failed: {error}") from error
        finally:
            self._depth = 0
            self._closed_in_transaction.clear()

    def _rollback(self) -> None:
        if self._db.in_transaction:  # some errors (a full disk) have rolled back already
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def database_id(self) -> str:
        """A random id made with the database: tells one database from a copy of another."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()
        return str(row[0]) if row else ""

    # -- meters -----------------------------------------------------------------
    def add_meters(self, meter_ids: Iterable[int]) -> None:
        """Create meters not yet known."""
        now = _now_text()
        insert_rows(self._db, "INSERT OR IGNORE INTO meters (meter_id, created_at)",
                    [(meter_id, now) for meter_id in meter_ids])

    def save_meter(self, meter: MeterRecord) -> None:
        """Create or update a meter with its owner's details."""
        self._db.execute(
            """INSERT INTO meters (meter_id, name, fin_no, region, created_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (meter_id) DO UPDATE SET
                 name = excluded.name, fin_no = excluded.fin_no, region = excluded.region""",
            (meter.meter_id, meter.name, meter.fin_no, meter.region, _now_text()),
        )

    def get_meter(self, meter_id: int) -> MeterRecord | None:
        """One meter, or None."""
        row = self._db.execute(
            "SELECT meter_id, name, fin_no, region FROM meters WHERE meter_id = ?", (meter_id,)
        ).fetchone()
        return MeterRecord(*row) if row else None

    def meter_ids(self) -> npt.NDArray[np.int64]:
        """Every meter id, ascending."""
        ids = [meter_id for (meter_id,) in self._db.execute(
            "SELECT meter_id FROM meters ORDER BY meter_id")]
        return np.array(ids, dtype=np.int64)

    # -- readings ---------------------------------------------------------------
    def _rows_of(self, day: int, meter_ids: Sequence[int]
                 ) -> dict[int, tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]]:
        """The packed rows of some meters on one day, unpacked: {meter_id: (values, marks)}."""
        found: dict[int, tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]] = {}
        ids = list(meter_ids)
        for start in range(0, len(ids), _CHUNK):
            part = ids[start:start + _CHUNK]
            rows = self._db.execute(
                f"""SELECT meter_id, slots_wh, marks FROM day_readings
                    WHERE day = ? AND meter_id IN ({",".join("?" * len(part))})""",
                (day, *part),
            )
            for meter_id, blob, marks in rows:
                found[int(meter_id)] = (unpack_row(blob), unpack_marks(marks))
        return found

    def add_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings already known to be new; existing slots are kept."""
        by_day: dict[date, list[Reading]] = {}
        for reading in readings:
            by_day.setdefault(reading.day, []).append(reading)
        for day, group in by_day.items():
            number = day_number(day)
            closed = self._is_closed(day)
            rows = self._rows_of(number, sorted({r.meter_id for r in group}))
            changed: dict[int, tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]] = {}
            for reading in group:
                check_energy(reading.energy_wh)
                values, marks = changed.get(reading.meter_id) or _copy_or_empty(
                    rows.get(reading.meter_id))
                if values[reading.slot] == MISSING:
                    values[reading.slot] = reading.energy_wh
                    marks[reading.slot] = LATE if closed else ON_TIME
                changed[reading.meter_id] = (values, marks)
            self._write_rows(number, changed, rows if closed else None)

    def put_day_rows(self, day: date, meter_ids: Sequence[int],
                     rows: npt.NDArray[np.uint16]) -> None:
        """Replace whole rows of ``day`` with rows from today's store (the authority).

        On a day that is already closed (closed by hand while open) the rows amend it.
        """
        number = day_number(day)
        if self._is_closed(day):
            old = self._rows_of(number, meter_ids)
            changed = {}
            for meter_id, values in zip(meter_ids, rows, strict=True):
                before = old.get(int(meter_id))
                marks = before[1].copy() if before else np.zeros(SLOTS_PER_DAY, np.uint8)
                changed[int(meter_id)] = (values.astype(np.uint16), marks)
            self._write_rows(number, changed, old)
            return
        insert_rows(self._db,
                    "INSERT OR REPLACE INTO day_readings (day, meter_id, slots_wh, marks)",
                    [(number, int(m), blob, ALL_ON_TIME)
                     for m, blob in zip(meter_ids, pack_rows(rows), strict=True)])

    def put_open_day_rows(self, day: date, meter_ids: Sequence[int],
                          rows: npt.NDArray[np.uint16]) -> bool:
        """One INSERT ... SELECT that is its own transaction (durable when it returns),
        writing nothing if ``day`` is closed: a group commit of an open day's rows then
        lets the writer thread give up the GIL three times instead of twenty.

        Up to ``OPEN_ROWS_AT_MOST`` meters; the statement's row count is the next power of
        two, the last row repeated (a repeat replaces the row with itself), so a handful
        of statements are prepared at all.
        """
        count = len(meter_ids)
        if self._depth or not 0 < count <= OPEN_ROWS_AT_MOST:
            return False
        size = 1 << (count - 1).bit_length()
        number, blobs = day_number(day), pack_rows(rows)
        values: list[object] = []
        for index in range(size):
            at = min(index, count - 1)
            values += (number, int(meter_ids[at]), blobs[at], ALL_ON_TIME)
        values.append(day.isoformat())
        try:
            written = self._db.execute(open_rows_sql(size), values).rowcount
        except sqlite3.Error as error:
            raise StorageError(f"transaction failed: {error}") from error
        return written > 0

    def _write_rows(self, day: int,
                    rows: dict[int, tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]],
                    old: dict[int, tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]] | None
                    ) -> None:
        """Write packed rows; with ``old`` (a closed day) amend its totals and regions too."""
        if not rows:
            return
        ids = list(rows)
        values = np.stack([rows[m][0] for m in ids])
        marks = np.stack([rows[m][1] for m in ids])
        self._db.executemany(
            "INSERT OR REPLACE INTO day_readings (day, meter_id, slots_wh, marks)"
            " VALUES (?, ?, ?, ?)",
            zip([day] * len(ids), ids, pack_rows(values), pack_marks(marks), strict=True),
        )
        if old is not None:
            before = np.stack([old[m][0] if m in old else np.full(SLOTS_PER_DAY, MISSING)
                               for m in ids]).astype(np.uint16)
            self._amend_closed_day(day, ids, before, values)

    def store_reading(self, reading: Reading) -> Outcome:
        """Store one reading of any day; a new one on a closed day amends that day's total."""
        check_energy(reading.energy_wh)
        number = day_number(reading.day)
        found = self._rows_of(number, [reading.meter_id]).get(reading.meter_id)
        if found is not None and found[0][reading.slot] != MISSING:
            return "duplicate" if found[0][reading.slot] == reading.energy_wh else "conflict"
        if found is None and self._imported(number, [reading.meter_id]):
            return "imported"
        self.add_meters([reading.meter_id])
        self.add_readings([reading])
        return "stored"

    def imported_meters(self, day: date, meter_ids: Sequence[int]) -> set[int]:
        """Meters of ``meter_ids`` whose total of ``day`` was imported without readings.

        An import closes its days, so a day not closed has none (one lookup).
        """
        if not meter_ids or not self._is_closed(day):
            return set()
        return self._imported(day_number(day), meter_ids)

    def _imported(self, day: int, meter_ids: Sequence[int]) -> set[int]:
        """Meters of ``meter_ids`` whose total of ``day`` was imported without readings.

        A day imported as a total has a daily total but no packed row; late readings
        are refused for it rather than added on top of the imported figure.
        """
        found: set[int] = set()
        ids = list(meter_ids)
        for start in range(0, len(ids), _CHUNK):
            part = ids[start:start + _CHUNK]
            found.update(meter_id for (meter_id,) in self._db.execute(
                f"""SELECT t.meter_id FROM daily_totals t WHERE t.day = ?
                    AND t.meter_id IN ({",".join("?" * len(part))})
                    AND NOT EXISTS (SELECT 1 FROM day_readings r
                                    WHERE r.day = t.day AND r.meter_id = t.meter_id)""",
                (day, *part)))
        return found

    def _is_closed(self, day: date) -> bool:
        """Whether ``day`` is closed; asked once per write transaction, which holds the
        database's write lock: no other process can close it meanwhile."""
        known = self._closed_in_transaction.get(day)
        if known is not None:
            return known
        found = self._db.execute("SELECT 1 FROM closed_days WHERE day = ?",
                                 (day.isoformat(),)).fetchone() is not None
        if self._depth:
            self._closed_in_transaction[day] = found
        return found

    def day_matrix(self, day: date) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        """(meter_ids, (meters, 48) readings [Wh], MISSING where empty) of ``day``, by id."""
        cursor = self._db.execute(
            "SELECT meter_id, slots_wh FROM day_readings WHERE day = ? ORDER BY meter_id",
            (day_number(day),))
        ids: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)]
        blobs: list[bytes] = []
        while rows := cursor.fetchmany(100_000):
            ids.append(np.fromiter(map(itemgetter(0), rows), np.int64, len(rows)))
            blobs.append(b"".join(map(itemgetter(1), rows)))
        return np.concatenate(ids), unpack_rows(blobs)

    def readings_of_day(self, day: date) -> Iterator[Reading]:
        """Every reading of ``day``."""
        ids, values = self.day_matrix(day)
        rows, slots = np.nonzero(values != MISSING)
        for row, slot in zip(rows.tolist(), slots.tolist(), strict=True):
            yield Reading(int(ids[row]), day, slot, int(values[row, slot]))

    def _days_of_meter(self, table: str, columns: str, meter_id: int, first: date,
                       last: date) -> list[tuple[object, ...]]:
        """Rows of one meter for days first..last: one seek per day of the (day, meter) key."""
        return list(self._db.execute(
            f"""WITH RECURSIVE days (day) AS (
                  SELECT ? UNION ALL SELECT day + 1 FROM days WHERE day < ?)
                SELECT t.day, {columns} FROM days CROSS JOIN {table} t
                  ON t.day = days.day AND t.meter_id = ? ORDER BY t.day""",
            (day_number(first), day_number(last), meter_id)))

    def readings_between(self, meter_ids: Sequence[int], first: date, last: date) -> list[Reading]:
        """Readings of some meters for days ``first``..``last`` inclusive."""
        found: list[Reading] = []
        for meter_id in meter_ids:
            for number, blob in self._days_of_meter("day_readings", "t.slots_wh", meter_id,
                                                    first, last):
                day = day_of_number(int(number))  # type: ignore[call-overload]
                values = unpack_row(blob)  # type: ignore[arg-type]
                found.extend(Reading(meter_id, day, int(slot), int(values[slot]))
                             for slot in np.flatnonzero(values != MISSING))
        return found

    def first_reading_day(self, meter_id: int) -> date | None:
        """The first day with a reading or an imported total of the meter (None: none).

        Steps through the distinct days of the (day, meter) keys, one seek each, and stops
        at the first day that holds the meter.
        """
        found = [self._first_day_in(table, meter_id) for table in ("day_readings", "daily_totals")]
        numbers = [number for number in found if number is not None]
        return day_of_number(min(numbers)) if numbers else None

    def _first_day_in(self, table: str, meter_id: int) -> int | None:
        row = self._db.execute(
            f"""WITH RECURSIVE days (day) AS (
                  SELECT MIN(day) FROM {table}
                  UNION ALL
                  SELECT (SELECT MIN(day) FROM {table} WHERE day > days.day) FROM days
                  WHERE days.day IS NOT NULL)
                SELECT day FROM days WHERE day IS NOT NULL AND EXISTS (
                  SELECT 1 FROM {table} t WHERE t.day = days.day AND t.meter_id = ?)
                LIMIT 1""", (meter_id,)).fetchone()
        return None if row is None else int(row[0])

    # -- accounts ---------------------------------------------------------------
    def add_resident(self, meter_id: int, password_hash: str) -> bool:
        """Create a resident account; False if the meter already has one."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO residents (meter_id, password_hash, created_at)"
            " VALUES (?, ?, ?)",
            (meter_id, password_hash, _now_text()),
        )
        return cursor.rowcount == 1

    def resident_password_hash(self, meter_id: int) -> str | None:
        """The stored hash of a resident's password, or None."""
        row = self._db.execute(
            "SELECT password_hash FROM residents WHERE meter_id = ?", (meter_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_manager(self, username: str, password_hash: str) -> None:
        """Create a management account or change its password."""
        self._db.execute(
            """INSERT INTO managers (username, password_hash, created_at) VALUES (?, ?, ?)
               ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash""",
            (username, password_hash, _now_text()),
        )

    def manager_password_hash(self, username: str) -> str | None:
        """The stored hash of a manager's password, or None."""
        row = self._db.execute(
            "SELECT password_hash FROM managers WHERE username = ?", (username,)
        ).fetchone()
        return str(row[0]) if row else None

    # -- sessions and login throttle --------------------------------------------------
    def set_resident_password(self, meter_id: int, password_hash: str) -> bool:
        """Replace a resident's password hash; False if the meter has no account."""
        cursor = self._db.execute(
            "UPDATE residents SET password_hash = ? WHERE meter_id = ?", (password_hash, meter_id)
        )
        return cursor.rowcount == 1

    def add_session(self, session: SessionRecord) -> None:
        """Store a new login session."""
        self._db.execute(
            "INSERT INTO sessions (session_id, user, created_at, last_seen_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session.session_id, session.user, _utc_text(session.created_at),
             _utc_text(session.last_seen_at), _utc_text(session.expires_at)),
        )

    def get_session(self, session_id: str) -> SessionRecord | None:
        """One session by id (expired or not), or None."""
        row = self._db.execute(
            "SELECT session_id, user, created_at, last_seen_at, expires_at FROM sessions"
            " WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            return None
        return SessionRecord(str(row[0]), str(row[1]), *(datetime.fromisoformat(value)
                                                         for value in row[2:]))

    def touch_session(self, session_id: str, last_seen_at: datetime, expires_at: datetime
                      ) -> None:
        """Record that a session was used and move its expiry."""
        self._db.execute(
            "UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE session_id = ?",
            (_utc_text(last_seen_at), _utc_text(expires_at), session_id),
        )

    def delete_session(self, session_id: str) -> None:
        """End one session."""
        self._db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

    def delete_user_sessions(self, user: str, keep: str | None = None) -> int:
        """End every session of ``user`` except ``keep``; returns how many ended."""
        cursor = self._db.execute(
            "DELETE FROM sessions WHERE user = ? AND session_id IS NOT ?", (user, keep)
        )
        return cursor.rowcount

    def delete_expired_sessions(self, now: datetime) -> int:
        """Forget sessions that expired before ``now``; returns how many."""
        cursor = self._db.execute("DELETE FROM sessions WHERE expires_at < ?", (_utc_text(now),))
        return cursor.rowcount

    def login_attempts(self, key: str) -> tuple[int, float] | None:
        """(attempts, last attempt [Unix s]) counted against ``key``, or None."""
        row = self._db.execute(
            "SELECT attempts, last_attempt_s FROM login_attempts WHERE key = ?", (key,)
        ).fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def set_login_attempts(self, key: str, attempts: int, last_attempt_s: float) -> None:
        """Store the attempts counted against ``key`` (0 attempts forgets the key)."""
        if attempts <= 0:
            self._db.execute("DELETE FROM login_attempts WHERE key = ?", (key,))
            return
        self._db.execute(
            "INSERT OR REPLACE INTO login_attempts (key, attempts, last_attempt_s)"
            " VALUES (?, ?, ?)", (key, attempts, last_attempt_s),
        )

    def delete_login_attempts_before(self, last_attempt_s: float) -> int:
        """Forget keys whose last attempt is older than ``last_attempt_s``; returns how many."""
        cursor = self._db.execute(
            "DELETE FROM login_attempts WHERE last_attempt_s < ?", (last_attempt_s,)
        )
        return cursor.rowcount


def _utc_text(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC text that sorts in time order."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")



def _copy_or_empty(found: tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]] | None
                   ) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]:
    if found is None:
        return np.full(SLOTS_PER_DAY, MISSING, np.uint16), np.zeros(SLOTS_PER_DAY, np.uint8)
    return found[0].copy(), found[1].copy()
