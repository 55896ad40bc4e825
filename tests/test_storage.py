"""The master database (seed 1.4) on both backends, checked through a second connection.

Every test that takes ``storage`` runs on SQLite and on PostgreSQL (the ``backend``
fixture; tests/pg.py starts the throwaway cluster).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from metermatrix.storage import (
    UNASSIGNED,
    DailyTotal,
    MeterRecord,
    Reading,
    RegionDay,
    SQLiteStorage,
    Storage,
    StorageError,
    open_storage,
)
from metermatrix.storage.columns import store_by_day
from metermatrix.storage.packing import MISSING, day_number
from tests import dbviews

D1, D2, D3 = date(2025, 2, 8), date(2025, 2, 9), date(2025, 2, 10)


@pytest.fixture
def make_storage(tmp_path: Path, backend: str, request: pytest.FixtureRequest
                 ) -> Iterator[Callable[[str], Storage]]:
    """``make_storage(name)``: a new, empty database of the test's backend."""
    made: list[Storage] = []

    def factory(name: str = "metermatrix") -> Storage:
        if backend == "postgresql":
            from metermatrix.storage.postgres import PostgresStorage

            cluster = request.getfixturevalue("pg_cluster")
            made.append(PostgresStorage(cluster.create_database()))
        else:
            made.append(SQLiteStorage(tmp_path / f"{name}.sqlite3"))
        return made[-1]

    yield factory
    for store in made:
        store.close()
        if backend == "postgresql":
            request.getfixturevalue("pg_cluster").drop_database(store.url)  # type: ignore


@pytest.fixture
def storage(make_storage: Callable[[str], Storage]) -> Storage:
    store = make_storage("metermatrix")
    store.prepare_days(D1)  # as the server does at start: no partition made mid-transaction
    return store


@pytest.fixture
def db(tmp_path: Path, storage: Storage) -> Iterator[Any]:
    """A second, independent connection: sees only what was committed."""
    connection = dbviews.connect_to(tmp_path, getattr(storage, "url", None))
    yield connection
    connection.close()


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[SQLiteStorage]:
    store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    yield store
    store.close()


def fill(storage: Storage, *readings: Reading) -> None:
    with storage.transaction():
        storage.add_meters({r.meter_id for r in readings})
        storage.add_readings(readings)


def totals(db: Any, day: date) -> dict[int, tuple[int, int]]:
    rows = db.execute("SELECT meter_id, energy_wh, readings FROM day_totals WHERE day = ?",
                      (day.isoformat(),))
    return {meter_id: (wh, n) for meter_id, wh, n in rows}


def regions(db: Any, day: date) -> dict[str, tuple[int, int, int]]:
    rows = db.execute("SELECT region, energy_wh, meters, readings FROM region_daily WHERE day = ?",
                      (day.isoformat(),))
    return {region: (wh, meters, n) for region, wh, meters, n in rows}


def test_database_is_wal_with_full_sync(sqlite_storage: SQLiteStorage, tmp_path: Path) -> None:
    db = dbviews.connect(tmp_path / "metermatrix.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_storage._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_open_storage_uses_the_data_folder(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "data")
    storage.close()
    assert (tmp_path / "data" / "metermatrix.sqlite3").exists()


def test_meters_are_created_once_and_updated_with_owner(storage: Storage) -> None:
    storage.add_meters([5, 5, 6])
    storage.save_meter(MeterRecord(5, "Aashima", "A3389127I", "East"))
    storage.add_meters([5])
    assert storage.get_meter(5) == MeterRecord(5, "Aashima", "A3389127I", "East")
    assert storage.get_meter(6) == MeterRecord(6)
    assert storage.get_meter(7) is None


def test_list_meters_by_region_and_unassigned(storage: Storage) -> None:
    storage.save_meter(MeterRecord(3, "C", None, "West"))
    storage.save_meter(MeterRecord(1, "A", None, "East"))
    storage.add_meters([2])
    assert [m.meter_id for m in storage.list_meters()] == [1, 2, 3]
    assert [m.meter_id for m in storage.list_meters("East")] == [1]
    assert [m.meter_id for m in storage.list_meters(UNASSIGNED)] == [2]
    assert storage.list_meters("North") == []


def test_writes_are_visible_only_after_commit(storage: Storage,
                                              db: Any) -> None:
    with storage.transaction():
        storage.add_readings([Reading(1, D1, 0, 100)])
        assert db.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 0
    assert db.execute("SELECT meter_id, day, slot, energy_wh FROM readings").fetchall() == [
        (1, "2025-02-08", 0, 100)]


def test_failed_transaction_stores_nothing(storage: Storage, db: Any) -> None:
    with pytest.raises(ZeroDivisionError), storage.transaction():
        storage.add_readings([Reading(1, D1, 0, 100)])
        1 / 0  # noqa: B018
    assert db.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 0
    fill(storage, Reading(1, D1, 0, 100))  # the connection is usable afterwards
    assert db.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 1


def test_add_readings_keeps_the_first_value(storage: Storage) -> None:
    fill(storage, Reading(1, D1, 0, 100))
    fill(storage, Reading(1, D1, 0, 999))
    assert list(storage.readings_of_day(D1)) == [Reading(1, D1, 0, 100)]


def test_store_reading_answers_stored_duplicate_conflict(storage: Storage) -> None:
    with storage.transaction():
        assert storage.store_reading(Reading(9, D1, 3, 500)) == "stored"
        assert storage.store_reading(Reading(9, D1, 3, 500)) == "duplicate"
        assert storage.store_reading(Reading(9, D1, 3, 501)) == "conflict"
    assert list(storage.readings_of_day(D1)) == [Reading(9, D1, 3, 500)]
    assert storage.get_meter(9) == MeterRecord(9)


def test_close_day_records_totals_regions_and_the_day(storage: Storage,
                                                      db: Any) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "East"))
    storage.save_meter(MeterRecord(2, "B", None, "East"))
    storage.add_meters([3])
    storage.close_day(D1, [(1, 1000, 2), (2, 500, 1), (3, 7, 1)])
    assert totals(db, D1) == {1: (1000, 2), 2: (500, 1), 3: (7, 1)}
    assert regions(db, D1) == {"East": (1500, 2, 3), UNASSIGNED: (7, 1, 1)}
    assert storage.closed_days() == [D1]


def test_closing_a_day_twice_changes_nothing(storage: Storage,
                                             db: Any) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "East"))
    storage.close_day(D1, [(1, 1000, 2)])
    first = (totals(db, D1), regions(db, D1), storage.closed_days())
    storage.close_day(D1, [(1, 1000, 2)])
    assert (totals(db, D1), regions(db, D1), storage.closed_days()) == first


def test_close_from_readings_equals_the_sum_of_readings(storage: Storage,
                                                        db: Any) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "North"))
    fill(storage, *(Reading(1, D1, slot, 1000 + slot) for slot in range(48)),
         Reading(2, D1, 47, 333), Reading(2, D2, 0, 50))
    assert storage.close_day_from_readings(D1) == 2
    expected = dict(db.execute(
        "SELECT meter_id, SUM(energy_wh) FROM readings WHERE day = '2025-02-08' GROUP BY 1"))
    assert {m: wh for m, (wh, _) in totals(db, D1).items()} == expected
    assert totals(db, D1)[1] == (48 * 1000 + sum(range(48)), 48)
    assert regions(db, D1) == {"North": (49_128, 1, 48), UNASSIGNED: (333, 1, 1)}
    assert storage.close_day_from_readings(D1) == 2
    assert totals(db, D1)[1] == (49_128, 48)


def test_late_reading_amends_a_closed_day_by_exactly_its_energy(storage: Storage,
                                                                db: Any) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "West"))
    fill(storage, Reading(1, D1, 0, 1000))
    storage.close_day_from_readings(D1)
    with storage.transaction():
        assert storage.store_reading(Reading(1, D1, 47, 250)) == "stored"
        assert storage.store_reading(Reading(1, D1, 47, 250)) == "duplicate"
    assert totals(db, D1) == {1: (1250, 2)}
    assert regions(db, D1) == {"West": (1250, 1, 2)}


def test_late_reading_of_a_new_meter_adds_it_to_the_closed_day(storage: Storage,
                                                               db: Any) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "West"))
    fill(storage, Reading(1, D1, 0, 1000))
    storage.close_day_from_readings(D1)
    with storage.transaction():
        storage.store_reading(Reading(2, D1, 5, 40))
    assert totals(db, D1) == {1: (1000, 1), 2: (40, 1)}
    assert regions(db, D1) == {"West": (1000, 1, 1), UNASSIGNED: (40, 1, 1)}
    storage.close_day_from_readings(D1)  # a re-close agrees with the amended figures
    assert regions(db, D1) == {"West": (1000, 1, 1), UNASSIGNED: (40, 1, 1)}


def test_reading_of_an_open_day_does_not_make_a_total(storage: Storage,
                                                      db: Any) -> None:
    with storage.transaction():
        storage.store_reading(Reading(1, D2, 0, 10))
    assert totals(db, D2) == {}


def test_days_with_open_readings_lists_unclosed_days_before(storage: Storage) -> None:
    fill(storage, Reading(1, D1, 0, 1), Reading(1, D2, 0, 1), Reading(1, D3, 0, 1))
    storage.close_day_from_readings(D1)
    assert storage.days_with_open_readings(before=D3) == [D2]
    assert storage.days_with_open_readings(before=date(2025, 3, 1)) == [D2, D3]


def test_readings_between_and_region_slot_energy(storage: Storage) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "Central"))
    storage.save_meter(MeterRecord(2, "B", None, "Central"))
    fill(storage, Reading(1, D1, 0, 10), Reading(2, D1, 0, 20), Reading(1, D2, 1, 30),
         Reading(3, D1, 0, 40), Reading(1, D3, 0, 99))
    assert storage.readings_between([1], D1, D2) == [Reading(1, D1, 0, 10), Reading(1, D2, 1, 30)]
    assert storage.readings_between([1, 3], D1, D1) == [Reading(1, D1, 0, 10),
                                                       Reading(3, D1, 0, 40)]
    assert storage.region_slot_energy("Central", D1, D2) == [(D1, 0, 30, 2), (D2, 1, 30, 1)]
    assert storage.region_slot_energy(UNASSIGNED, D1, D3) == [(D1, 0, 40, 1)]


def test_first_reading_day_is_the_meters_earliest_reading_or_imported_total(
        storage: Storage) -> None:
    assert storage.first_reading_day(1) is None
    fill(storage, Reading(2, D1, 0, 10), Reading(1, D3, 5, 10), Reading(1, D2, 47, 10))
    assert storage.first_reading_day(1) == D2
    assert storage.first_reading_day(2) == D1
    assert storage.first_reading_day(3) is None
    storage.import_daily_totals([DailyTotal(1, date(2025, 1, 31), 1000, 48)])
    assert storage.first_reading_day(1) == date(2025, 1, 31)


def test_daily_and_region_totals_between(storage: Storage) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "Central"))
    storage.add_meters([2])
    storage.close_day(D1, [(1, 100, 48), (2, 200, 48)])
    storage.close_day(D2, [(1, 110, 48)])
    assert storage.daily_totals_between([1], D1, D3) == [DailyTotal(1, D1, 100, 48),
                                                        DailyTotal(1, D2, 110, 48)]
    assert storage.daily_totals_between(None, D1, D1) == [DailyTotal(1, D1, 100, 48),
                                                         DailyTotal(2, D1, 200, 48)]
    assert storage.region_days_between(D2, D3) == [RegionDay("Central", D2, 110, 1, 48)]


def test_import_daily_totals_closes_their_days(storage: Storage,
                                               db: Any) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "East"))
    storage.import_daily_totals([DailyTotal(1, D1, 187_140, 48), DailyTotal(1, D2, 177_930, 48)])
    assert storage.closed_days() == [D1, D2]
    assert regions(db, D2) == {"East": (177_930, 1, 48)}


def test_resident_accounts_are_created_once(storage: Storage) -> None:
    assert storage.add_resident(999999999, "hash-1") is True
    assert storage.add_resident(999999999, "hash-2") is False
    assert storage.resident_password_hash(999999999) == "hash-1"
    assert storage.resident_password_hash(555555555) is None


def test_manager_password_can_be_changed(storage: Storage) -> None:
    assert storage.manager_password_hash("manager") is None
    storage.set_manager("manager", "old")
    storage.set_manager("manager", "new")
    assert storage.manager_password_hash("manager") == "new"


def test_readonly_storage_reads_but_cannot_write(tmp_path: Path,
                                                 sqlite_storage: SQLiteStorage) -> None:
    fill(sqlite_storage, Reading(1, D1, 0, 10))
    readonly = open_storage(tmp_path, readonly=True)
    try:
        assert list(readonly.readings_of_day(D1)) == [Reading(1, D1, 0, 10)]
        with pytest.raises(sqlite3.OperationalError):
            readonly.add_meters([2])
    finally:
        readonly.close()


def test_refused_statement_raises_storage_error_and_stores_nothing(
        storage: Storage, db: Any) -> None:
    with pytest.raises(StorageError, match="outside"), storage.transaction():
        storage.add_meters([1])
        storage.store_reading(Reading(1, D1, 0, -5))
    assert db.execute("SELECT COUNT(*) FROM meters").fetchone()[0] == 0


def test_store_readings_in_bulk_answers_as_one_by_one(
        make_storage: Callable[[str], Storage]) -> None:
    one, bulk = make_storage("one"), make_storage("bulk")
    for storage in (one, bulk):
        storage.save_meter(MeterRecord(1, "A", None, "East"))
        fill(storage, Reading(1, D1, 0, 10), Reading(2, D1, 1, 20))
        storage.close_day_from_readings(D1)
    batch = [Reading(1, D1, 0, 10), Reading(1, D1, 0, 11), Reading(1, D1, 5, 50),
             Reading(1, D1, 5, 50), Reading(3, D2, 0, 7), Reading(3, D2, 0, 8),
             Reading(2, D1, 2, 30)]
    with one.transaction():
        expected = [one.store_reading(reading) for reading in batch]
    with bulk.transaction():
        assert bulk.store_readings(batch) == expected == [
            "duplicate", "conflict", "stored", "duplicate", "stored", "conflict", "stored"]
    for storage in (one, bulk):
        assert storage.daily_totals_between(None, D1, D2) == [DailyTotal(1, D1, 60, 2),
                                                             DailyTotal(2, D1, 50, 2)]
        assert storage.readings_between([3], D2, D2) == [Reading(3, D2, 0, 7)]
        assert storage.get_meter(3) == MeterRecord(3)


def test_readings_for_a_day_imported_as_a_total_are_refused(storage: Storage) -> None:
    storage.save_meter(MeterRecord(1, "A", None, "East"))
    storage.import_daily_totals([DailyTotal(1, D1, 14_755, 48)])
    with storage.transaction():
        assert storage.store_reading(Reading(1, D1, 0, 500)) == "imported"
        assert storage.store_readings([Reading(1, D1, 1, 500), Reading(2, D1, 1, 9)]) == [
            "imported", "stored"]
    assert storage.daily_totals_between([1], D1, D1) == [DailyTotal(1, D1, 14_755, 48)]
    assert storage.readings_between([1], D1, D1) == []


@pytest.mark.parametrize("meters", [40, 8_000])  # a few meters, and a whole-day sized close
def test_close_sums_every_region_as_its_meters_readings(storage: SQLiteStorage,
                                                         db: sqlite3.Connection,
                                                         meters: int) -> None:
    import numpy as np

    rng = np.random.default_rng(meters)
    ids = list(range(500_000_000, 500_000_000 + meters))
    names = ["Central", "East", "North", None]
    with storage.transaction():
        storage.add_meters(ids[: meters * 9 // 10])  # the last tenth are unknown meters
        for meter_id in ids[: meters * 9 // 10: 7]:
            storage.save_meter(MeterRecord(meter_id, None, None, names[meter_id % 4]))
    values = np.where(rng.random((meters, 48)) < 0.8, rng.integers(0, 2000, (meters, 48)),
                      0xFFFF).astype(np.uint16)
    values[::11] = 0xFFFF  # meters without a reading that day
    with storage.transaction():
        storage.put_day_rows(D1, ids, values)
    every = ["Central", "East", "North", "Unassigned"]
    before = {region: storage.region_slot_energy(region, D1, D1) for region in every}
    assert storage.close_day_from_readings(D1) == int((values != 0xFFFF).any(axis=1).sum())
    by_join = {region: (wh, meters, n) for region, wh, meters, n in db.execute(
        """SELECT COALESCE(m.region, 'Unassigned'), SUM(t.energy_wh), COUNT(*), SUM(t.readings)
           FROM daily_totals t LEFT JOIN meters m USING (meter_id) WHERE t.day = ?
           GROUP BY 1""", (day_number(D1),))}
    assert regions(db, D1) == by_join
    assert {region: storage.region_slot_energy(region, D1, D1) for region in every} == before
    assert sum(wh for wh, _, _ in by_join.values()) == int(
        np.where(values != 0xFFFF, values, 0).sum())


def three_days(storage: Storage) -> None:
    """D1 closed with readings, D2 imported for meter 9, D3 open."""
    storage.prepare_days(D1)
    fill(storage, *(Reading(m, D1, s, 100 + m + s) for m in range(1, 8) for s in (0, 3)))
    storage.close_day_from_readings(D1)
    storage.import_daily_totals([DailyTotal(9, D2, 5000, 48)])


@pytest.mark.parametrize("seed", range(4))
def test_store_readings_in_bulk_and_as_columns_answer_as_one_by_one_on_random_batches(
        make_storage: Callable[[str], Storage], seed: int) -> None:
    """Odd seeds add meters 12..199: a day's rows then go through COPY on PostgreSQL
    (even seeds: sent as arrays)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    one, bulk, columns = make_storage("one"), make_storage("bulk"), make_storage("columns")
    for storage in (one, bulk, columns):
        three_days(storage)
    for _ in range(3):
        batch = [Reading(int(rng.integers(1, 12)), [D1, D2, D3][int(rng.integers(3))],
                         int(rng.integers(0, 6)), int(rng.choice([100, 104, 107, 250])))
                 for _ in range(300)]
        batch += [Reading(int(rng.integers(12, 200)), [D1, D2, D3][int(rng.integers(3))],
                          int(rng.integers(0, 6)), int(rng.choice([100, 250])))
                  for _ in range(600 * (seed % 2))]
        rng.shuffle(batch)  # type: ignore[arg-type]
        with one.transaction():
            expected = [one.store_reading(reading) for reading in batch]
        with bulk.transaction():
            assert bulk.store_readings(batch) == expected
        with columns.transaction():
            assert store_by_day(columns.store_day_readings, batch) == expected
    assert {"stored", "duplicate", "conflict", "imported"} <= set(expected)
    for storage in (bulk, columns):
        for day in (D1, D2, D3):
            assert storage.readings_between(list(range(1, 200)), day, day) == \
                one.readings_between(list(range(1, 200)), day, day)
        assert storage.daily_totals_between(None, D1, D3) == one.daily_totals_between(None, D1, D3)
        assert storage.region_days_between(D1, D3) == one.region_days_between(D1, D3)
        assert [storage.region_slot_energy(r, D1, D3) for r in ("Unassigned",)] == \
            [one.region_slot_energy(r, D1, D3) for r in ("Unassigned",)]
        assert storage.meter_ids().tolist() == one.meter_ids().tolist()


def test_two_connections_storing_the_same_meter_days_at_once_store_each_slot_once(
        make_storage: Callable[[str], Storage]) -> None:
    """Two writers offer overlapping random batches of the same meter-days (rows that
    exist and rows that do not yet, an open and a closed day) at the same moment."""
    import threading

    import numpy as np

    first = make_storage("shared")
    three_days(first)
    where = getattr(first, "url", None) or first.path  # type: ignore[attr-defined]
    start = threading.Barrier(2)
    answers: list[list[tuple[Reading, str]]] = [[], []]
    failures: list[BaseException] = []

    def write(seed: int, out: list[tuple[Reading, str]]) -> None:
        rng = np.random.default_rng(seed)
        storage = type(first)(where)  # its own connection, made in its thread
        try:
            for round_ in range(12):
                # 1..7 have rows on D1; even rounds send few rows (arrays), odd ones COPY
                meters = rng.permutation(np.arange(1, 150))[:[30, 100][round_ % 2]]
                batch = [Reading(int(m), [D1, D3][round_ // 2 % 2], int(rng.integers(0, 8)),
                                 int(rng.integers(0, 3)) + seed * 1000) for m in meters
                         for _ in range(3)]
                start.wait(timeout=30)
                with storage.transaction():
                    out.extend(zip(batch, storage.store_readings(batch), strict=True))
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)
            start.abort()
        finally:
            storage.close()

    threads = [threading.Thread(target=write, args=(seed, answers[seed])) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    stored: dict[tuple[int, date, int], int] = {}
    for reading, outcome in answers[0] + answers[1]:
        if outcome == "stored":
            cell = (reading.meter_id, reading.day, reading.slot)
            assert cell not in stored, f"{cell} stored twice"
            stored[cell] = reading.energy_wh
    held = {(r.meter_id, r.day, r.slot): r.energy_wh
            for day in (D1, D3) for r in first.readings_between(list(range(1, 150)), day, day)
            if not (day == D1 and r.meter_id < 8 and r.slot in (0, 3))}
    assert held == stored
    for reading, outcome in answers[0] + answers[1]:  # every other answer as the cell holds
        cell = (reading.meter_id, reading.day, reading.slot)
        if outcome != "stored" and cell in stored:
            assert outcome == ("duplicate" if stored[cell] == reading.energy_wh else "conflict")
    by_meter = {t.meter_id: t.energy_wh for t in first.daily_totals_between(None, D1, D1)}
    for meter_id in range(1, 150):
        late = sum(wh for (m, d, _), wh in stored.items() if m == meter_id and d == D1)
        early = sum(100 + meter_id + s for s in (0, 3)) if meter_id < 8 else 0
        assert by_meter.get(meter_id, 0) == early + late
    assert sum(d.energy_wh for d in first.region_days_between(D1, D1)) == sum(by_meter.values())


def test_two_connections_merging_an_open_days_rows_in_opposite_orders_both_finish(
        make_storage: Callable[[str], Storage]) -> None:
    """Two processes' group commits write today's rows of the same meters at once, one
    listing them upwards and one downwards: neither waits for the other for ever."""
    import threading

    import numpy as np

    first = make_storage("merging")
    where = getattr(first, "url", None) or first.path  # type: ignore[attr-defined]
    meters = list(range(1, 601))
    with first.transaction():
        first.put_day_rows(D3, meters, np.full((len(meters), 48), MISSING, np.uint16))
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def write(upwards: bool) -> None:
        storage = type(first)(where)  # its own connection, made in its thread
        ids = meters if upwards else meters[::-1]
        try:
            for slot in range(6):
                rows = np.full((len(ids), 48), MISSING, np.uint16)
                rows[:, : slot + 1] = 10 + np.arange(slot + 1)  # the day so far
                start.wait(timeout=60)
                with storage.transaction():
                    storage.put_day_rows(D3, ids, rows)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)
            start.abort()
        finally:
            storage.close()

    threads = [threading.Thread(target=write, args=(upwards,)) for upwards in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    held = first.readings_between(meters, D3, D3)
    assert len(held) == 6 * len(meters) and {r.energy_wh - r.slot for r in held} == {10}


# -- PostgreSQL only ----------------------------------------------------------------------
def test_postgres_partitions_by_month_with_the_meter_id_first_in_every_key(
        pg_database: str) -> None:
    from metermatrix.storage.postgres import PostgresStorage

    storage = PostgresStorage(pg_database)
    try:
        storage.prepare_days(D1)  # February: January (late readings) .. April are made
        fill(storage, Reading(1, D1, 0, 10), Reading(2, date(2025, 7, 3), 1, 20))
        storage.close_day_from_readings(D1)
        views = dbviews.PostgresViews(pg_database)
        parts = [name for (name,) in views.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'day_readings'"
            " AND c.relkind = 'r' ORDER BY 1")]
        assert parts == ["day_readings_2025_01", "day_readings_2025_02", "day_readings_2025_03",
                         "day_readings_2025_04", "day_readings_2025_07"]
        assert views.execute("SELECT COUNT(*) FROM day_readings_2025_07").fetchone() == (1,)
        keys = dict(views.execute(
            "SELECT t.relname, a.attname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]"
            " WHERE x.indisprimary AND t.relname IN ('day_readings', 'daily_totals', 'meters',"
            " 'residents')"))
        assert keys == dict.fromkeys(["day_readings", "daily_totals", "meters", "residents"],
                                     "meter_id")
        assert storage._db.execute("SHOW synchronous_commit").fetchone() == ("on",)
        views.close()
    finally:
        storage.close()


def test_postgres_readonly_storage_reads_but_cannot_write(pg_database: str) -> None:
    from metermatrix.storage.postgres import PostgresStorage

    writer = PostgresStorage(pg_database)
    fill(writer, Reading(1, D1, 0, 10))
    readonly = open_storage(Path("unused"), readonly=True, database=pg_database)
    try:
        assert list(readonly.readings_of_day(D1)) == [Reading(1, D1, 0, 10)]
        with pytest.raises(StorageError, match="read-only"), readonly.transaction():
            readonly.add_meters([2])
    finally:
        readonly.close()
        writer.close()


@pytest.mark.parametrize("rows", [0, 1, 3, 25, 341, 1000])
def test_multi_row_inserts_write_what_executemany_writes(rows: int) -> None:
    from metermatrix.storage.sqlite_inserts import insert_rows

    values = [(n, f"meter {n}", bytes([n % 256]) * 3) for n in range(rows)]
    values += values[:rows // 3]  # repeats: the later copy replaces, as in executemany
    tables = []
    for write in ("insert_rows", "executemany"):
        db = sqlite3.connect(":memory:", isolation_level=None)
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, blob BLOB)")
        if write == "insert_rows":
            insert_rows(db, "INSERT OR REPLACE INTO t (id, name, blob)", values)
        else:
            db.executemany("INSERT OR REPLACE INTO t (id, name, blob) VALUES (?, ?, ?)", values)
        tables.append(db.execute("SELECT * FROM t ORDER BY id").fetchall())
    assert tables[0] == tables[1] and len(tables[0]) == rows
