"""The master database in PostgreSQL (psycopg 3): the same tables and packed rows as SQLite.

A connection runs in autocommit; ``transaction()`` groups writes into one transaction,
committed with ``synchronous_commit = on`` (the commit is on disk before the server
answers a meter). Readings live in storage/postgres_readings.py (of other days given as
columns: storage/postgres_columns.py), closed days and the monthly partitions in
storage/postgres_days.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources

import numpy as np
import numpy.typing as npt
import psycopg

from metermatrix.storage.base import MeterRecord, SessionRecord, Storage, StorageError
from metermatrix.storage.postgres_columns import PostgresColumns
from metermatrix.storage.postgres_readings import PostgresReadings

#: Advisory lock key held while the schema is made (several processes may start at once).
SCHEMA_LOCK = 0x4D4D_0001
#: Advisory lock key of the worker that runs the day close and the snapshot.
ROUTINES_LOCK = 0x4D4D_0003


class PostgresStorage(PostgresReadings, PostgresColumns, Storage):
    """Storage on one PostgreSQL connection; make one per thread."""

    MARK = "%s"

    def __init__(self, url: str, readonly: bool = False) -> None:
        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            raise StorageError(f"cannot connect to {_safe(url)}: {error}") from error
        self._db.execute("SET synchronous_commit = on")
        self._db.execute("SET timezone = 'UTC'")
        self._depth = 0
        self._months: set[int] = set()
        if readonly:
            self._db.execute("SET default_transaction_read_only = on")
        else:
            self._create_schema()

    def _create_schema(self) -> None:
        """Run postgres_schema.sql unless its last objects exist (its CREATE INDEX IF NOT
        EXISTS would wait for every open write transaction on the tables)."""
        row = self._db.execute(
            "SELECT to_regclass('meters_region_first_day') IS NOT NULL"
            " AND to_regclass('daily_totals_energy') IS NULL AND EXISTS (SELECT 1"
            " FROM pg_proc WHERE proname = 'metermatrix_merge_slots') AND EXISTS (SELECT 1"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = 'meters' AND column_name = 'first_day')").fetchone()
        if row and row[0] and self.database_id():
            return
        script = resources.files(__package__).joinpath("postgres_schema.sql").read_text()
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self._db.execute(script.encode())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT (nested calls join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._db.transaction():
                yield
        except psycopg.Error as error:  # callers handle StorageError, whatever the backend
            raise StorageError(f"transaction failed: {error}") from error
        finally:
            self._depth = 0

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def try_lock_routines(self) -> bool:
        """Take the routines' advisory lock if free (session lock: freed when the
        connection ends, a crash included)."""
        row = self._db.execute("SELECT pg_try_advisory_lock(%s)", (ROUTINES_LOCK,)).fetchone()
        return bool(row and row[0])

    def database_id(self) -> str:
        """A random id made with the database: tells one database from a copy of another."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()
        return str(row[0]) if row else ""

    # -- meters -----------------------------------------------------------------
    def add_meters(self, meter_ids: Iterable[int]) -> None:
        """Create meters not yet known."""
        ids = sorted({int(meter_id) for meter_id in meter_ids})
        if ids:
            self._db.execute("INSERT INTO meters (meter_id) SELECT unnest(%s::bigint[])"
                             " ON CONFLICT (meter_id) DO NOTHING", (ids,))

    def save_meter(self, meter: MeterRecord) -> None:
        """Create or update a meter with its owner's details."""
        self._db.execute(
            """INSERT INTO meters (meter_id, name, fin_no, region) VALUES (%s, %s, %s, %s)
               ON CONFLICT (meter_id) DO UPDATE SET
                 name = excluded.name, fin_no = excluded.fin_no, region = excluded.region""",
            (meter.meter_id, meter.name, meter.fin_no, meter.region))

    def get_meter(self, meter_id: int) -> MeterRecord | None:
        """One meter, or None."""
        row = self._db.execute("SELECT meter_id, name, fin_no, region FROM meters"
                               " WHERE meter_id = %s", (meter_id,)).fetchone()
        return MeterRecord(*row) if row else None

    def meter_ids(self) -> npt.NDArray[np.int64]:
        """Every meter id, ascending."""
        rows = self._db.execute("SELECT meter_id FROM meters ORDER BY meter_id").fetchall()
        return np.array([meter_id for (meter_id,) in rows], dtype=np.int64)

    # -- accounts ---------------------------------------------------------------
    def add_resident(self, meter_id: int, password_hash: str) -> bool:
        """Create a resident account; False if the meter already has one."""
        cursor = self._db.execute(
            "INSERT INTO residents (meter_id, password_hash) VALUES (%s, %s)"
            " ON CONFLICT (meter_id) DO NOTHING", (meter_id, password_hash))
        return cursor.rowcount == 1

    def resident_password_hash(self, meter_id: int) -> str | None:
        """The stored hash of a resident's password, or None."""
        row = self._db.execute("SELECT password_hash FROM residents WHERE meter_id = %s",
                               (meter_id,)).fetchone()
        return str(row[0]) if row else None

    def set_manager(self, username: str, password_hash: str) -> None:
        """Create a management account or change its password."""
        self._db.execute(
            """INSERT INTO managers (username, password_hash) VALUES (%s, %s)
               ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash""",
            (username, password_hash))

    def manager_password_hash(self, username: str) -> str | None:
        """The stored hash of a manager's password, or None."""
        row = self._db.execute("SELECT password_hash FROM managers WHERE username = %s",
                               (username,)).fetchone()
        return str(row[0]) if row else None

    # -- sessions and login throttle --------------------------------------------------
    def set_resident_password(self, meter_id: int, password_hash: str) -> bool:
        """Replace a resident's password hash; False if the meter has no account."""
        cursor = self._db.execute("UPDATE residents SET password_hash = %s WHERE meter_id = %s",
                                  (password_hash, meter_id))
        return cursor.rowcount == 1

    def add_session(self, session: SessionRecord) -> None:
        """Store a new login session."""
        self._db.execute(
            'INSERT INTO sessions (session_id, "user", created_at, last_seen_at, expires_at)'
            " VALUES (%s, %s, %s, %s, %s)",
            (session.session_id, session.user, session.created_at, session.last_seen_at,
             session.expires_at))

    def get_session(self, session_id: str) -> SessionRecord | None:
        """One session by id (expired or not), or None."""
        row = self._db.execute(
            'SELECT session_id, "user", created_at, last_seen_at, expires_at FROM sessions'
            " WHERE session_id = %s", (session_id,)).fetchone()
        if row is None:
            return None
        return SessionRecord(str(row[0]), str(row[1]), *(_utc(value) for value in row[2:]))

    def touch_session(self, session_id: str, last_seen_at: datetime, expires_at: datetime
                      ) -> None:
        """Record that a session was used and move its expiry."""
        self._db.execute(
            "UPDATE sessions SET last_seen_at = %s, expires_at = %s WHERE session_id = %s",
            (last_seen_at, expires_at, session_id))

    def delete_session(self, session_id: str) -> None:
        """End one session."""
        self._db.execute("DELETE FROM sessions WHERE session_id = %s", (session_id,))

    def delete_user_sessions(self, user: str, keep: str | None = None) -> int:
        """End every session of ``user`` except ``keep``; returns how many ended."""
        cursor = self._db.execute(
            'DELETE FROM sessions WHERE "user" = %s AND session_id IS DISTINCT FROM %s',
            (user, keep))
        return cursor.rowcount

    def delete_expired_sessions(self, now: datetime) -> int:
        """Forget sessions that expired before ``now``; returns how many."""
        return self._db.execute("DELETE FROM sessions WHERE expires_at < %s", (now,)).rowcount

    def login_attempts(self, key: str) -> tuple[int, float] | None:
        """(attempts, last attempt [Unix s]) counted against ``key``, or None."""
        row = self._db.execute("SELECT attempts, last_attempt_s FROM login_attempts"
                               " WHERE key = %s", (key,)).fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def set_login_attempts(self, key: str, attempts: int, last_attempt_s: float) -> None:
        """Store the attempts counted against ``key`` (0 attempts forgets the key)."""
        if attempts <= 0:
            self._db.execute("DELETE FROM login_attempts WHERE key = %s", (key,))
            return
        self._db.execute(
            """INSERT INTO login_attempts (key, attempts, last_attempt_s) VALUES (%s, %s, %s)
               ON CONFLICT (key) DO UPDATE SET attempts = excluded.attempts,
                 last_attempt_s = excluded.last_attempt_s""", (key, attempts, last_attempt_s))

    def delete_login_attempts_before(self, last_attempt_s: float) -> int:
        """Forget keys whose last attempt is older than ``last_attempt_s``; returns how many."""
        return self._db.execute("DELETE FROM login_attempts WHERE last_attempt_s < %s",
                                (last_attempt_s,)).rowcount


def _utc(moment: datetime) -> datetime:
    """A timestamptz from the database in UTC (whole seconds, as SQLite keeps them)."""
    return moment.astimezone(UTC).replace(microsecond=0)


def _safe(url: str) -> str:
    """A connection URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
