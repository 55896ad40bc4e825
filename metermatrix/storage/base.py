"""The master database interface (seed 1.4): what every storage backend implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

#: Region name used for meters whose owner has not registered a region yet.
UNASSIGNED = "Unassigned"

Outcome = Literal["stored", "duplicate", "conflict", "imported"]
#: The outcome of each code ``Storage.store_day_readings`` answers with.
OUTCOMES: tuple[Outcome, ...] = ("stored", "duplicate", "conflict", "imported")
#: Why a reading for a day imported as a total is refused ("imported").
IMPORTED_DAY = ("this day was imported as a total without half-hourly readings; its"
                " readings are not added to it")


class StorageError(RuntimeError):
    """The master database refused or failed an operation."""


@dataclass(frozen=True, slots=True)
class MeterRecord:
    """A meter and its owner, as far as known."""

    meter_id: int
    name: str | None = None
    fin_no: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One half-hourly reading: ``energy_wh`` [Wh] in ``slot`` (0..47) of local ``day``."""

    meter_id: int
    day: date
    slot: int
    energy_wh: int


@dataclass(frozen=True, slots=True)
class DailyTotal:
    """A meter's total for one closed day [Wh] and how many readings made it."""

    meter_id: int
    day: date
    energy_wh: int
    readings: int


@dataclass(frozen=True, slots=True)
class RegionDay:
    """A region's total for one closed day [Wh], its reporting meters and readings."""

    region: str
    day: date
    energy_wh: int
    meters: int
    readings: int


class Storage(abc.ABC):
    """Master database. Writes happen inside ``transaction()``; one writer at a time."""

    # -- transactions ---------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one durable commit."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    @abc.abstractmethod
    def database_id(self) -> str:
        """A random id made with the database: tells one database from a copy of another."""

    def prepare_days(self, day: date) -> None:  # noqa: B027 - most backends need nothing
        """Make ready the storage of ``day``'s month and the next (PostgreSQL: partitions)."""

    def try_lock_routines(self) -> bool:
        """Whether this connection now holds the right to run the close and the snapshot,
        among processes sharing the database (held until the connection ends)."""
        return True

    # -- meters -----------------------------------------------------------------
    @abc.abstractmethod
    def add_meters(self, meter_ids: Iterable[int]) -> None:
        """Create meters not yet known (owners unknown)."""

    @abc.abstractmethod
    def save_meter(self, meter: MeterRecord) -> None:
        """Create or update a meter with its owner's details."""

    @abc.abstractmethod
    def get_meter(self, meter_id: int) -> MeterRecord | None:
        """One meter, or None."""

    @abc.abstractmethod
    def meter_ids(self) -> npt.NDArray[np.int64]:
        """Every meter id, ascending."""

    @abc.abstractmethod
    def region_of_meters(self, meter_ids: npt.NDArray[np.int64]) -> list[str]:
        """The region of each meter (UNASSIGNED without one), in the order given."""

    @abc.abstractmethod
    def meters_by_region(self) -> dict[str, npt.NDArray[np.int64]]:
        """Every meter's id, ascending, under its region (UNASSIGNED for meters without one)."""

    @abc.abstractmethod
    def list_meters(self, region: str | None = None) -> list[MeterRecord]:
        """All meters (of one region), ordered by id."""

    # -- readings ---------------------------------------------------------------
    @abc.abstractmethod
    def add_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings already known to be new (today's path); existing slots are kept."""

    @abc.abstractmethod
    def store_reading(self, reading: Reading) -> Outcome:
        """Store one reading of any day; a new one on a closed day amends that day's total."""

    def store_readings(self, readings: Sequence[Reading]) -> list[Outcome]:
        """``store_reading`` for many readings, in order (backends may do it in bulk)."""
        return [self.store_reading(reading) for reading in readings]

    def store_day_readings(self, day: date, meter_ids: npt.NDArray[np.int64],
                           slots: npt.NDArray[np.int64], energy_wh: npt.NDArray[np.int64]
                           ) -> npt.NDArray[np.int64]:
        """``store_readings`` for one day's readings given as columns.

        Returns the index into ``OUTCOMES`` of each reading's outcome.
        """
        readings = [Reading(m, day, s, wh) for m, s, wh in zip(
            meter_ids.tolist(), slots.tolist(), energy_wh.tolist(), strict=True)]
        return np.array([OUTCOMES.index(o) for o in self.store_readings(readings)], np.int64)

    @abc.abstractmethod
    def imported_meters(self, day: date, meter_ids: Sequence[int]) -> set[int]:
        """Meters of ``meter_ids`` whose total of ``day`` was imported without readings.

        Their readings of ``day`` are refused ("imported"), whether the day is closed or
        still open in a running server: the import is read in the transaction that would
        store them.
        """

    @abc.abstractmethod
    def put_day_rows(self, day: date, meter_ids: Sequence[int],
                     rows: npt.NDArray[np.uint16]) -> None:
        """Replace meters' whole rows of ``day`` (48 values [Wh], 0xFFFF empty) from today's."""

    def put_open_day_rows(self, day: date, meter_ids: Sequence[int],
                          rows: npt.NDArray[np.uint16]) -> bool:
        """``put_day_rows`` of known meters, outside any transaction, as one durable write
        of its own, if ``day`` is not closed: False (nothing written) when it is closed or
        the backend has no such write; the caller then writes in a transaction."""
        return False

    @abc.abstractmethod
    def day_matrix(self, day: date) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
        """(meter_ids ascending, (meters, 48) readings [Wh], 0xFFFF where empty) of ``day``."""

    @abc.abstractmethod
    def readings_of_day(self, day: date) -> Iterator[Reading]:
        """Every reading of ``day`` (for restoring today's store)."""

    @abc.abstractmethod
    def readings_between(self, meter_ids: Sequence[int], first: date, last: date) -> list[Reading]:
        """Readings of some meters for days ``first``..``last`` inclusive."""

    @abc.abstractmethod
    def first_reading_day(self, meter_id: int) -> date | None:
        """The first local day with a reading or an imported total of the meter (None: none)."""

    @abc.abstractmethod
    def day_total_columns(self, day: date) -> tuple[npt.NDArray[np.int64],
                                                     npt.NDArray[np.int64],
                                                     npt.NDArray[np.int64]]:
        """Every meter's total of a closed day as columns: (meter_ids ascending, energy_wh,
        readings); empty for a day without totals."""

    @abc.abstractmethod
    def region_first_days(self) -> list[tuple[str, date, int]]:
        """(region, first day, meters): how many meters of each region (UNASSIGNED for
        none) have their first reading or daily total on each day; meters without any
        are left out. Read from ``meters.first_day``, never from the readings."""

    @abc.abstractmethod
    def region_slot_energy(
        self, region: str, first: date, last: date
    ) -> list[tuple[date, int, int, int]]:
        """Per (day, slot) of a region: (day, slot, energy_wh, readings) summed over its meters."""

    # -- days -------------------------------------------------------------------
    @abc.abstractmethod
    def close_day(self, day: date, totals: Iterable[tuple[int, int, int]]) -> None:
        """Record (meter_id, energy_wh, readings) totals for ``day`` and mark it closed."""

    @abc.abstractmethod
    def close_day_from_readings(
        self, day: date,
        rows: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]] | None = None
    ) -> int:
        """Close ``day`` from its stored readings; returns the number of meters totalled.

        ``rows`` (meter_ids ascending, (meters, 48) [Wh]): the day's stored rows as the
        caller holds them (today's store, the authority of the open day's rows), so that
        they need not be read; a backend may read them all the same.
        """

    @abc.abstractmethod
    def closed_days(self) -> list[date]:
        """All closed days, oldest first."""

    @abc.abstractmethod
    def days_with_open_readings(self, before: date) -> list[date]:
        """Days before ``before`` that have readings but were never closed."""

    @abc.abstractmethod
    def daily_totals_between(
        self, meter_ids: Sequence[int] | None, first: date, last: date
    ) -> list[DailyTotal]:
        """Daily totals of some meters (None: all) for days ``first``..``last``."""

    @abc.abstractmethod
    def region_days_between(self, first: date, last: date) -> list[RegionDay]:
        """Per-region daily totals for days ``first``..``last``."""

    @abc.abstractmethod
    def import_daily_totals(self, totals: Iterable[DailyTotal]) -> None:
        """Load historic daily totals (demo data, migrations) and mark their days closed."""

    # -- dashboards -------------------------------------------------------------
    @abc.abstractmethod
    def meter_day_readings(self, day: date) -> list[tuple[int, int, int]]:
        """Per meter with readings on ``day``: (meter_id, energy_wh, readings), from readings."""

    @abc.abstractmethod
    def meter_totals_between(self, first: date, last: date) -> list[tuple[int, int, int]]:
        """Per meter: (meter_id, energy_wh, readings) summed over daily totals first..last."""

    @abc.abstractmethod
    def region_meter_counts(self) -> dict[str, int]:
        """How many meters each region has (UNASSIGNED for meters without a region)."""

    @abc.abstractmethod
    def data_version(self) -> int:
        """A number that changes whenever another connection has committed a change."""

    # -- accounts ---------------------------------------------------------------
    @abc.abstractmethod
    def add_resident(self, meter_id: int, password_hash: str) -> bool:
        """Create a resident account; False if the meter already has one."""

    @abc.abstractmethod
    def resident_password_hash(self, meter_id: int) -> str | None:
        """The stored hash of a resident's password, or None."""

    @abc.abstractmethod
    def set_manager(self, username: str, password_hash: str) -> None:
        """Create a management account or change its password."""

    @abc.abstractmethod
    def manager_password_hash(self, username: str) -> str | None:
        """The stored hash of a manager's password, or None."""

    # -- sessions and login throttle --------------------------------------------------
    @abc.abstractmethod
    def set_resident_password(self, meter_id: int, password_hash: str) -> bool:
        """Replace a resident's password hash; False if the meter has no account."""

    @abc.abstractmethod
    def add_session(self, session: SessionRecord) -> None:
        """Store a new login session."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None:
        """One session by id (expired or not), or None."""

    @abc.abstractmethod
    def touch_session(self, session_id: str, last_seen_at: datetime, expires_at: datetime
                      ) -> None:
        """Record that a session was used and move its expiry."""

    @abc.abstractmethod
    def delete_session(self, session_id: str) -> None:
        """End one session."""

    @abc.abstractmethod
    def delete_user_sessions(self, user: str, keep: str | None = None) -> int:
        """End every session of ``user`` except ``keep``; returns how many ended."""

    @abc.abstractmethod
    def delete_expired_sessions(self, now: datetime) -> int:
        """Forget sessions that expired before ``now``; returns how many."""

    @abc.abstractmethod
    def login_attempts(self, key: str) -> tuple[int, float] | None:
        """(attempts, last attempt [Unix s]) counted against ``key``, or None."""

    @abc.abstractmethod
    def set_login_attempts(self, key: str, attempts: int, last_attempt_s: float) -> None:
        """Store the attempts counted against ``key`` (0 attempts forgets the key)."""

    @abc.abstractmethod
    def delete_login_attempts_before(self, last_attempt_s: float) -> int:
        """Forget keys whose last attempt is older than ``last_attempt_s``; returns how many."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login session: ``session_id`` is the SHA-256 hex of the cookie's token."""

    session_id: str
    user: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
