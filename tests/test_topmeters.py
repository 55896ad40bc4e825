"""The dashboards' top consumers from each closed day's totals read as columns, on both
backends: the same meters and figures as summing every meter's totals row by row, with
late readings and imports after the close, and no row of ``daily_totals`` read per meter."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metermatrix.meterdirectory import meter_frame
from metermatrix.storage import (
    DailyTotal,
    MeterRecord,
    Reading,
    SQLiteStorage,
    Storage,
    open_storage,
)
from metermatrix.storage.migrate import SCHEMA_VERSION
from metermatrix.storage.totalcolumns import decode_values, encode_values
from metermatrix.topmeters import top_meter_totals

DAYS = [date(2026, 3, 1) + timedelta(days=n) for n in range(6)]
REGION_OF = {0: "Central", 1: "East", 2: None}
METERS = 200
#: Meters installed on the fourth day, and a meter silent on the third.
NEW_METERS, SILENT = range(METERS - 4, METERS + 1), 7


@pytest.fixture
def storage(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Storage]:
    """METERS meters in three regions, six closed days of random totals: a few meters use a
    lot on one day only; some meters start later and one is silent a day."""
    if backend == "postgresql":
        from metermatrix.storage.postgres import PostgresStorage

        store: Storage = PostgresStorage(request.getfixturevalue("pg_cluster").create_database())
    else:
        store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    store.prepare_days(DAYS[0])
    rng = np.random.default_rng(5)
    with store.transaction():
        for meter_id in range(1, METERS + 1):
            store.save_meter(MeterRecord(meter_id, f"M{meter_id}", None, REGION_OF[meter_id % 3]))
    energy = rng.integers(5000, 9000, size=(METERS, len(DAYS)))
    energy[rng.choice(METERS, 30, replace=False), rng.integers(0, len(DAYS), 30)] += 30000
    store.import_daily_totals([
        DailyTotal(meter_id, day, int(energy[meter_id - 1, column]), 48)
        for column, day in enumerate(DAYS) for meter_id in range(1, METERS + 1)
        if not (meter_id in NEW_METERS and column < 3) and not (meter_id == SILENT and column == 2)
    ])
    yield store
    store.close()
    if backend == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(store.url)  # type: ignore


def summed(storage: Storage, days: list[date], region: str | None | bool = False
           ) -> pd.DataFrame:
    """Every meter's totals over ``days``, the plain way (optionally of one region)."""
    rows = [(t.meter_id, t.energy_wh / 1000, t.readings)
            for t in storage.daily_totals_between(None, min(days), max(days)) if t.day in days]
    frame = pd.DataFrame(rows, columns=["meter_id", "energy_kwh", "readings"]
                         ).groupby("meter_id").sum()
    if region is not False:
        frame = frame[[REGION_OF[int(m) % 3] == region for m in frame.index]]
    return frame


def top(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    return frame.sort_index().nlargest(count, "energy_kwh", keep="first")


def no_open_totals() -> pd.DataFrame:
    return meter_frame(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def of_region(region: str | None):  # noqa: ANN201 - a MeterFilter
    return lambda ids: np.array([REGION_OF[int(m) % 3] == region for m in ids], bool)


def as_rows(storage: Storage, day: date) -> list[tuple[int, int, int]]:
    ids, energy, readings = storage.day_total_columns(day)
    return list(zip(ids.tolist(), energy.tolist(), readings.tolist(), strict=True))


def plain_rows(storage: Storage, day: date) -> list[tuple[int, int, int]]:
    return [(t.meter_id, t.energy_wh, t.readings)
            for t in storage.daily_totals_between(None, day, day)]


@pytest.mark.parametrize("count", [1, 10, 40, METERS + 5])
def test_the_largest_meters_are_those_of_the_plain_sum(storage: Storage, count: int) -> None:
    found = top_meter_totals(storage, DAYS, no_open_totals(), count)
    expected = top(summed(storage, DAYS), count)
    assert len(found) == min(count, METERS)
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)


def test_open_days_and_a_region_are_ranked_with_the_closed_days(storage: Storage) -> None:
    open_totals = meter_frame(np.array([8, 5, 2], np.int64), np.array([5, 1, 90000], np.int64),
                              np.array([10, 10, 10], np.int64))
    days = DAYS[1:4]
    found = top_meter_totals(storage, days, open_totals, 5, of_region(None))
    plain = summed(storage, days, None).add(open_totals, fill_value=0)
    assert found.loc[2, "energy_kwh"] == pytest.approx(plain.loc[2, "energy_kwh"])
    pd.testing.assert_frame_equal(found, top(plain, 5), check_dtype=False)
    assert found.index[0] == 2
    east = top_meter_totals(storage, days, no_open_totals(), 10, of_region("East"))
    pd.testing.assert_frame_equal(east, top(summed(storage, days, "East"), 10),
                                  check_dtype=False)


def test_a_closed_days_columns_are_its_totals(storage: Storage) -> None:
    for day in DAYS:
        assert as_rows(storage, day) == plain_rows(storage, day)
    assert SILENT not in storage.day_total_columns(DAYS[2])[0]
    assert len(storage.day_total_columns(DAYS[0] - timedelta(days=1))[0]) == 0


def test_late_readings_after_the_close_are_in_the_columns(storage: Storage) -> None:
    day = DAYS[-1] + timedelta(days=2)
    with storage.transaction():
        storage.add_readings([Reading(1, day, 0, 300), Reading(2, day, 0, 200)])
    storage.close_day_from_readings(day)
    assert as_rows(storage, day) == [(1, 300, 1), (2, 200, 1)]
    storage.store_readings([Reading(1, day, 1, 50), Reading(3, day, 5, 900)])  # late
    assert as_rows(storage, day) == [(1, 350, 2), (2, 200, 1), (3, 900, 1)] == \
        plain_rows(storage, day)
    found = top_meter_totals(storage, [day], no_open_totals(), 2)
    assert found.index.tolist() == [3, 1] and found["energy_kwh"].tolist() == [0.9, 0.35]
    storage.import_daily_totals([DailyTotal(4, day, 20, 48)])  # the whole day is written again
    assert as_rows(storage, day) == plain_rows(storage, day)


def test_the_sums_read_no_rows_of_daily_totals(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    store.import_daily_totals([DailyTotal(m, day, 100 * m, 48) for day in DAYS
                               for m in range(1, 50)])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    found = top_meter_totals(store, DAYS, no_open_totals(), 3)
    store._db.set_trace_callback(None)
    assert found.index.tolist() == [49, 48, 47]
    assert found["energy_kwh"].tolist() == [29.4, 28.8, 28.2]
    reads = [s for s in statements if "FROM daily_totals" in s and "amended_totals" not in s]
    assert reads == [] and sum("FROM day_total_columns" in s for s in statements) == len(DAYS)
    amended = next(s for s in statements if "amended_totals" in s)
    plan = store._db.execute(f"EXPLAIN QUERY PLAN {amended}").fetchall()
    assert "SEARCH a USING PRIMARY KEY" in plan[0][-1]  # the few amended meters, not the day
    store.close()


def test_a_folder_of_schema_3_gets_its_columns_on_first_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    store = open_storage(data_dir)
    store.import_daily_totals([DailyTotal(m, day, 10 * m + day.day, 40) for day in DAYS[:2]
                               for m in (3, 1, 2)])
    expected = {day: plain_rows(store, day) for day in DAYS[:2]}
    store.close()
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3", isolation_level=None)
    db.executescript("""DROP TABLE day_total_columns; DROP TABLE amended_totals;
                        CREATE INDEX daily_totals_energy ON daily_totals (day, energy_wh);
                        PRAGMA user_version = 3;""")
    db.close()
    store = open_storage(data_dir)
    assert {day: as_rows(store, day) for day in DAYS[:2]} == expected
    store.close()
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert db.execute("SELECT COUNT(*) FROM day_total_columns").fetchone()[0] == 2
    names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "daily_totals_energy" not in names
    db.close()


@pytest.mark.parametrize("values", [[0, 48, 255], [0, 256, 2**32 - 1], [-1, 5], [2**40, 0], []])
def test_a_column_takes_the_narrowest_width_and_reads_back(values: list[int]) -> None:
    array = np.array(values, np.int64)
    blob = encode_values(array)
    width = 1 if values and max(values) < 256 and min(values) >= 0 else (
        4 if values and max(values) < 2**32 and min(values) >= 0 else 8)
    assert len(blob) == width * len(values)
    assert decode_values(blob, len(values)).tolist() == values
    with pytest.raises(ValueError, match="cannot hold"):
        decode_values(b"\0" * 3, 2)
