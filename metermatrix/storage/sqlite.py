"""The master database in one SQLite file (WAL mode, synchronous=FULL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from metermatrix.storage.base import (
    UNASSIGNED,
    DailyTotal,
    MeterRecord,
    Outcome,
    Reading,
    RegionDay,
    SessionRecord,
    Storage,
    StorageError,
)

_REGION_OF_DAY = f"""
    INSERT OR REPLACE INTO region_daily (region, day, energy_wh, meters, readings)
    SELECT COALESCE(m.region, '{UNASSIGNED}'), t.day, SUM(t.energy_wh), COUNT(*), SUM(t.readings)
    FROM daily_totals t LEFT JOIN meters m USING (meter_id)
    WHERE t.day = ? GROUP BY 1, 2
"""


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLiteStorage(Storage):
    """Storage on one SQLite connection; make one per thread."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            uri = f"file:{path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.executescript(resources.files(__package__).joinpath("schema.sql").read_text())
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._depth = 0

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
        self._db.execute("BEGIN IMMEDIATE")
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

    def _rollback(self) -> None:
        if self._db.in_transaction:  # some errors (a full disk) have rolled back already
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # -- meters -----------------------------------------------------------------
    def add_meters(self, meter_ids: Iterable[int]) -> None:
        """Create meters not yet known."""
        now = _now_text()
        self._db.executemany(
            "INSERT OR IGNORE INTO meters (meter_id, created_at) VALUES (?, ?)",
            ((meter_id, now) for meter_id in meter_ids),
        )

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

    def list_meters(self, region: str | None = None) -> list[MeterRecord]:
        """All meters (of one region), ordered by id."""
        sql = "SELECT meter_id, name, fin_no, region FROM meters"
        if region is None:
            rows = self._db.execute(sql + " ORDER BY meter_id")
        elif region == UNASSIGNED:
            rows = self._db.execute(sql + " WHERE region IS NULL ORDER BY meter_id")
        else:
            rows = self._db.execute(sql + " WHERE region = ? ORDER BY meter_id", (region,))
        return [MeterRecord(*row) for row in rows]

    # -- readings ---------------------------------------------------------------
    def add_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings already known to be new; existing slots are kept."""
        self._db.executemany(
            "INSERT OR IGNORE INTO readings (meter_id, day, slot, energy_wh) VALUES (?, ?, ?, ?)",
            ((r.meter_id, r.day.isoformat(), r.slot, r.energy_wh) for r in readings),
        )

    def store_reading(self, reading: Reading) -> Outcome:
        """Store one reading of any day; a new one on a closed day amends that day's total."""
        day = reading.day.isoformat()
        row = self._db.execute(
            "SELECT energy_wh FROM readings WHERE meter_id = ? AND day = ? AND slot = ?",
            (reading.meter_id, day, reading.slot),
        ).fetchone()
        if row is not None:
            return "duplicate" if row[0] == reading.energy_wh else "conflict"
        self.add_meters([reading.meter_id])
        self._db.execute(
            "INSERT INTO readings (meter_id, day, slot, energy_wh) VALUES (?, ?, ?, ?)",
            (reading.meter_id, day, reading.slot, reading.energy_wh),
        )
        if self._is_closed(day):
            self._amend_total(reading.meter_id, day, reading.energy_wh)
        return "stored"

    def _is_closed(self, day: str) -> bool:
        found = self._db.execute("SELECT 1 FROM closed_days WHERE day = ?", (day,)).fetchone()
        return found is not None

    def _amend_total(self, meter_id: int, day: str, energy_wh: int) -> None:
        existing = self._db.execute(
            "SELECT 1 FROM daily_totals WHERE meter_id = ? AND day = ?", (meter_id, day)
        ).fetchone()
        self._db.execute(
            """INSERT INTO daily_totals (meter_id, day, energy_wh, readings) VALUES (?, ?, ?, 1)
               ON CONFLICT (meter_id, day) DO UPDATE SET
                 energy_wh = energy_wh + excluded.energy_wh, readings = readings + 1""",
            (meter_id, day, energy_wh),
        )
        self._db.execute(
            f"""INSERT INTO region_daily (region, day, energy_wh, meters, readings)
                SELECT COALESCE(region, '{UNASSIGNED}'), ?, ?, ?, 1 FROM meters WHERE meter_id = ?
                ON CONFLICT (region, day) DO UPDATE SET
                  energy_wh = energy_wh + excluded.energy_wh,
                  meters = meters + excluded.meters, readings = readings + 1""",
            (day, energy_wh, 0 if existing else 1, meter_id),
        )

    def readings_of_day(self, day: date) -> Iterator[Reading]:
        """Every reading of ``day``."""
        cursor = self._db.execute(
            "SELECT meter_id, slot, energy_wh FROM readings WHERE day = ?", (day.isoformat(),)
        )
        while rows := cursor.fetchmany(50_000):
            for meter_id, slot, energy_wh in rows:
                yield Reading(meter_id, day, slot, energy_wh)

    def readings_between(self, meter_ids: Sequence[int], first: date, last: date) -> list[Reading]:
        """Readings of some meters for days ``first``..``last`` inclusive."""
        found: list[Reading] = []
        for meter_id in meter_ids:
            rows = self._db.execute(
                """SELECT day, slot, energy_wh FROM readings
                   WHERE meter_id = ? AND day BETWEEN ? AND ? ORDER BY day, slot""",
                (meter_id, first.isoformat(), last.isoformat()),
            )
            found.extend(
                Reading(meter_id, date.fromisoformat(day), slot, wh) for day, slot, wh in rows
            )
        return found

    def region_slot_energy(
        self, region: str, first: date, last: date
    ) -> list[tuple[date, int, int, int]]:
        """Per (day, slot) of a region: (day, slot, energy_wh, readings) over its meters."""
        region_test = "m.region IS NULL" if region == UNASSIGNED else "m.region = ?"
        params: tuple[str, ...] = (first.isoformat(), last.isoformat())
        if region != UNASSIGNED:
            params = (*params, region)
        rows = self._db.execute(
            f"""SELECT r.day, r.slot, SUM(r.energy_wh), COUNT(*)
                FROM readings r JOIN meters m USING (meter_id)
                WHERE r.day BETWEEN ? AND ? AND {region_test}
                GROUP BY r.day, r.slot ORDER BY r.day, r.slot""",
            params,
        )
        return [(date.fromisoformat(day), slot, wh, n) for day, slot, wh, n in rows]

    # -- days -------------------------------------------------------------------
    def close_day(self, day: date, totals: Iterable[tuple[int, int, int]]) -> None:
        """Record (meter_id, energy_wh, readings) totals for ``day`` and mark it closed."""
        text = day.isoformat()
        with self.transaction():
            self._db.executemany(
                """INSERT INTO daily_totals (meter_id, day, energy_wh, readings)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (meter_id, day) DO UPDATE SET
                     energy_wh = excluded.energy_wh, readings = excluded.readings""",
                ((meter_id, text, wh, n) for meter_id, wh, n in totals),
            )
            self._mark_closed(text)

    def _mark_closed(self, day: str) -> None:
        self._db.execute("DELETE FROM region_daily WHERE day = ?", (day,))
        self._db.execute(_REGION_OF_DAY, (day,))
        self._db.execute(
            "INSERT OR IGNORE INTO closed_days (day, closed_at) VALUES (?, ?)", (day, _now_text())
        )

    def close_day_from_readings(self, day: date) -> int:
        """Close ``day`` from its stored readings; returns the number of meters totalled."""
        text = day.isoformat()
        with self.transaction():
            self._db.execute(
                """INSERT INTO daily_totals (meter_id, day, energy_wh, readings)
                   SELECT meter_id, day, SUM(energy_wh), COUNT(*) FROM readings
                   WHERE day = ? GROUP BY meter_id
                   ON CONFLICT (meter_id, day) DO UPDATE SET
                     energy_wh = excluded.energy_wh, readings = excluded.readings""",
                (text,),
            )
            self._mark_closed(text)
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM daily_totals WHERE day = ?", (text,)
            ).fetchone()
        return int(count)

    def closed_days(self) -> list[date]:
        """All closed days, oldest first."""
        rows = self._db.execute("SELECT day FROM closed_days ORDER BY day")
        return [date.fromisoformat(day) for (day,) in rows]

    def days_with_open_readings(self, before: date) -> list[date]:
        """Days before ``before`` that have readings but were never closed.

        The distinct days are found by skipping through the ``readings_day`` index, one
        seek per day, instead of reading every reading of every day.
        """
        rows = self._db.execute(
            """WITH RECURSIVE days (day) AS (
                 SELECT MIN(day) FROM readings
                 UNION ALL
                 SELECT (SELECT MIN(day) FROM readings WHERE day > days.day) FROM days
                 WHERE days.day < ?
               )
               SELECT day FROM days WHERE day IS NOT NULL AND day < ?
                 AND day NOT IN (SELECT day FROM closed_days) ORDER BY day""",
            (before.isoformat(), before.isoformat()),
        )
        return [date.fromisoformat(day) for (day,) in rows]

    def daily_totals_between(
        self, meter_ids: Sequence[int] | None, first: date, last: date
    ) -> list[DailyTotal]:
        """Daily totals of some meters (None: all) for days ``first``..``last``."""
        span = (first.isoformat(), last.isoformat())
        sql = "SELECT meter_id, day, energy_wh, readings FROM daily_totals WHERE "
        if meter_ids is None:
            rows = list(self._db.execute(sql + "day BETWEEN ? AND ? ORDER BY day, meter_id", span))
        else:
            rows = []
            for meter_id in meter_ids:
                rows.extend(self._db.execute(
                    sql + "meter_id = ? AND day BETWEEN ? AND ? ORDER BY day", (meter_id, *span)
                ))
        return [DailyTotal(m, date.fromisoformat(d), wh, n) for m, d, wh, n in rows]

    def region_days_between(self, first: date, last: date) -> list[RegionDay]:
        """Per-region daily totals for days ``first``..``last``."""
        rows = self._db.execute(
            """SELECT region, day, energy_wh, meters, readings FROM region_daily
               WHERE day BETWEEN ? AND ? ORDER BY day, region""",
            (first.isoformat(), last.isoformat()),
        )
        return [RegionDay(r, date.fromisoformat(d), wh, m, n) for r, d, wh, m, n in rows]

    def import_daily_totals(self, totals: Iterable[DailyTotal]) -> None:
        """Load historic daily totals and mark their days closed."""
        days: set[str] = set()

        def rows() -> Iterator[tuple[int, str, int, int]]:
            for total in totals:
                text = total.day.isoformat()
                days.add(text)
                yield total.meter_id, text, total.energy_wh, total.readings

        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO daily_totals (meter_id, day, energy_wh, readings)"
                " VALUES (?, ?, ?, ?)",
                rows(),
            )
            for day in sorted(days):
                self._mark_closed(day)

    # -- dashboards -------------------------------------------------------------
    def meter_day_readings(self, day: date) -> list[tuple[int, int, int]]:
        """Per meter with readings on ``day``: (meter_id, energy_wh, readings), from readings."""
        # Meter by meter through the primary key (meter_id, day, slot): one seek per meter
        # then its day's rows in a run, instead of one lookup per row via readings_day.
        text = day.isoformat()
        rows = self._db.execute(
            """SELECT m.meter_id, SUM(r.energy_wh), COUNT(*)
               FROM meters m CROSS JOIN readings r
                 ON r.meter_id = m.meter_id AND r.day >= ? AND r.day <= ?
               GROUP BY m.meter_id""",
            (text, text),
        )
        return [(int(m), int(wh), int(n)) for m, wh, n in rows]

    def meter_totals_between(self, first: date, last: date) -> list[tuple[int, int, int]]:
        """Per meter: (meter_id, energy_wh, readings) summed over daily totals first..last."""
        rows = self._db.execute(
            """SELECT m.meter_id, SUM(t.energy_wh), SUM(t.readings)
               FROM meters m CROSS JOIN daily_totals t
                 ON t.meter_id = m.meter_id AND t.day BETWEEN ? AND ?
               GROUP BY m.meter_id""",
            (first.isoformat(), last.isoformat()),
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
