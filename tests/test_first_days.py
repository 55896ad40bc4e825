"""Each meter's first day with data, kept by the database (``meters.first_day``), on both
backends: through readings, late packets, whole rows from today's store, imports, the day
close and the upgrade of an older database; read as counts per region and day."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from metermatrix.storage import (
    UNASSIGNED,
    DailyTotal,
    MeterRecord,
    Reading,
    SQLiteStorage,
    Storage,
    open_storage,
)
from metermatrix.storage.migrate import SCHEMA_VERSION
from metermatrix.storage.packing import MISSING

D1, D2, D3, D4 = (date(2025, 2, 8) + timedelta(days=n) for n in range(4))


@pytest.fixture
def storage(tmp_path: Path, backend: str, request: pytest.FixtureRequest
            ) -> Iterator[Storage]:
    """An empty database of the test's backend with meters 1, 2 (Central), 3 (East), 4
    (no region)."""
    if backend == "postgresql":
        from metermatrix.storage.postgres import PostgresStorage

        store: Storage = PostgresStorage(request.getfixturevalue("pg_cluster").create_database())
    else:
        store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    store.prepare_days(D1)
    with store.transaction():
        for meter_id, region in ((1, "Central"), (2, "Central"), (3, "East"), (4, None)):
            store.save_meter(MeterRecord(meter_id, f"Owner {meter_id}", None, region))
    yield store
    store.close()
    if backend == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(store.url)  # type: ignore


def first_days(storage: Storage) -> dict[tuple[str, date], int]:
    return {(region, day): meters for region, day, meters in storage.region_first_days()}


def test_a_meter_without_data_has_no_first_day(storage: Storage) -> None:
    assert storage.region_first_days() == []


def test_readings_set_the_first_day_and_earlier_ones_move_it_back(storage: Storage) -> None:
    with storage.transaction():
        storage.add_readings([Reading(1, D3, 0, 10), Reading(2, D3, 1, 10), Reading(4, D4, 0, 5)])
    assert first_days(storage) == {("Central", D3): 2, (UNASSIGNED, D4): 1}
    with storage.transaction():
        storage.add_readings([Reading(1, D2, 47, 10), Reading(1, D4, 0, 10)])
    assert first_days(storage) == {("Central", D2): 1, ("Central", D3): 1, (UNASSIGNED, D4): 1}


def test_whole_rows_from_todays_store_and_the_day_close_keep_first_days(
        storage: Storage) -> None:
    rows = np.full((2, 48), MISSING, np.uint16)
    rows[:, :3] = 100
    with storage.transaction():
        storage.put_day_rows(D3, [1, 3], rows)
    storage.close_day_from_readings(D3)
    with storage.transaction():
        storage.put_day_rows(D4, [1, 3, 2], np.vstack([rows, rows[:1]]))
    assert first_days(storage) == {("Central", D3): 1, ("Central", D4): 1, ("East", D3): 1}


def test_a_late_packet_for_a_closed_day_moves_the_first_day_back(storage: Storage) -> None:
    with storage.transaction():
        storage.add_readings([Reading(3, D3, 0, 10)])
    storage.close_day(D2, [(1, 500, 48)])
    assert storage.store_reading(Reading(3, D2, 20, 7)) == "stored"
    assert first_days(storage) == {("Central", D2): 1, ("East", D2): 1}


def test_imported_totals_and_given_totals_of_a_close_set_first_days(storage: Storage) -> None:
    storage.import_daily_totals([DailyTotal(2, D2, 4000, 48), DailyTotal(2, D1, 4000, 48)])
    storage.close_day(D3, [(3, 1000, 48), (4, 1000, 48)])
    assert first_days(storage) == {("Central", D1): 1, ("East", D3): 1, (UNASSIGNED, D3): 1}


def test_bulk_readings_as_columns_set_first_days(storage: Storage) -> None:
    storage.store_day_readings(D4, np.array([1, 2, 2], np.int64), np.array([0, 0, 1], np.int64),
                               np.array([5, 6, 7], np.int64))
    assert first_days(storage) == {("Central", D4): 2}


def _version_2_folder(tmp_path: Path) -> Path:
    """A data folder as the previous release left it: no ``meters.first_day``."""
    data_dir = tmp_path / "old"
    store = open_storage(data_dir)
    with store.transaction():
        for meter_id, region in ((1, "Central"), (2, "Central"), (3, None)):
            store.save_meter(MeterRecord(meter_id, None, None, region))
        store.add_readings([Reading(1, D3, 0, 10), Reading(3, D4, 0, 10)])
    store.import_daily_totals([DailyTotal(1, D1, 1000, 48), DailyTotal(2, D2, 1000, 48)])
    store.close()
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3", isolation_level=None)
    db.executescript("""DROP TRIGGER day_readings_first_day;
                        DROP INDEX meters_region_first_day;
                        ALTER TABLE meters DROP COLUMN first_day; PRAGMA user_version = 2;""")
    db.close()
    return data_dir


def test_upgrading_an_old_sqlite_folder_fills_first_days_and_keeps_them(tmp_path) -> None:
    data_dir = _version_2_folder(tmp_path)
    store = open_storage(data_dir)
    assert first_days(store) == {("Central", D1): 1, ("Central", D2): 1, (UNASSIGNED, D4): 1}
    with store.transaction():
        store.add_readings([Reading(3, D2, 0, 10)])
    assert first_days(store)[(UNASSIGNED, D2)] == 1
    store.close()
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    db.close()


def test_an_older_postgres_database_gets_its_first_days_on_open(
        request: pytest.FixtureRequest) -> None:
    from metermatrix.storage.postgres import PostgresStorage

    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    store = PostgresStorage(url)
    store.prepare_days(D1)
    with store.transaction():
        store.save_meter(MeterRecord(1, None, None, "West"))
        store.add_readings([Reading(1, D3, 0, 10)])
    store.import_daily_totals([DailyTotal(1, D2, 1000, 48)])
    store._db.execute("""DROP TRIGGER day_readings_first_day ON day_readings;
                         DROP TRIGGER daily_totals_first_day ON daily_totals;
                         DROP INDEX meters_region_first_day;
                         CREATE INDEX daily_totals_energy ON daily_totals (day, energy_wh);
                         ALTER TABLE meters DROP COLUMN first_day""")
    store.close()
    store = PostgresStorage(url)
    try:
        assert first_days(store) == {("West", D2): 1}
        with store.transaction():
            store.add_readings([Reading(1, D1, 0, 10)])
        assert first_days(store) == {("West", D1): 1}
        assert store._db.execute("SELECT to_regclass('daily_totals_energy')").fetchone() == \
            (None,)
    finally:
        store.close()
        cluster.drop_database(url)


def test_first_days_are_read_from_the_meters_table_alone(tmp_path: Path) -> None:
    """The dashboards' read of first days touches only ``meters``."""
    store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    store.save_meter(MeterRecord(1, None, None, "Central"))
    with store.transaction():
        store.add_readings([Reading(1, D3, 0, 10)])
    read: set[str] = set()

    def authorize(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table:
            read.add(table)
        return sqlite3.SQLITE_OK

    store._db.set_authorizer(authorize)
    assert store.region_first_days() == [("Central", D3, 1)]
    store._db.set_authorizer(None)
    store.close()
    assert read == {"meters"}
