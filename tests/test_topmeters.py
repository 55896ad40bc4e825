"""The dashboards' top consumers from each day's largest totals, on both backends: the same
meters and figures as summing every meter's totals, and no such sum is read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metermatrix.meterdirectory import meter_frame
from metermatrix.storage import UNASSIGNED, DailyTotal, MeterRecord, SQLiteStorage, Storage
from metermatrix.topmeters import FIRST_DEPTH, top_meter_totals

DAYS = [date(2026, 3, 1) + timedelta(days=n) for n in range(6)]
REGION_OF = {0: "Central", 1: "East", 2: None}
METERS = 3 * FIRST_DEPTH + 7


@pytest.fixture
def storage(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Storage]:
    """METERS meters in three regions, six closed days of random totals: a few meters use a
    lot on one day only, so the first walk is not enough."""
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
    store.import_daily_totals([DailyTotal(meter_id, day, int(energy[meter_id - 1, column]), 48)
                               for column, day in enumerate(DAYS)
                               for meter_id in range(1, METERS + 1)])
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
    return frame.nlargest(count, "energy_kwh", keep="first")


def no_open_totals() -> pd.DataFrame:
    return meter_frame(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


@pytest.mark.parametrize("count", [1, 10, 40])
def test_the_largest_meters_are_those_of_the_plain_sum(storage: Storage, count: int) -> None:
    found = top_meter_totals(storage, DAYS, no_open_totals(), count)
    expected = top(summed(storage, DAYS), count)
    pd.testing.assert_frame_equal(top(found, count), expected, check_dtype=False)


def test_open_days_and_a_region_are_ranked_with_the_closed_days(storage: Storage) -> None:
    open_totals = meter_frame(np.array([2, 5, 8], np.int64), np.array([90000, 1, 5], np.int64),
                              np.array([10, 10, 10], np.int64))
    days = DAYS[1:4]
    found = top_meter_totals(storage, days, open_totals, 5, [UNASSIGNED])
    plain = summed(storage, days, None).add(open_totals, fill_value=0)
    assert found.loc[2, "energy_kwh"] == pytest.approx(plain.loc[2, "energy_kwh"])
    pd.testing.assert_frame_equal(top(found, 5), top(plain, 5), check_dtype=False)
    assert top(found, 1).index[0] == 2


def test_a_days_largest_totals_come_from_the_index_alone(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    store.import_daily_totals([DailyTotal(m, DAYS[0], 100 * m, 48) for m in range(1, 50)])
    plan = " ".join(str(row[-1]) for row in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT meter_id, energy_wh FROM daily_totals WHERE day = 1"
        " ORDER BY energy_wh DESC LIMIT 5"))
    assert "daily_totals_energy" in plan and "TEMP B-TREE" not in plan
    assert store.day_top_meters(DAYS[0], 3) == [(49, 4900), (48, 4800), (47, 4700)]
    store.close()


def test_totals_too_even_for_the_walk_are_summed_per_meter(storage: Storage,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from metermatrix import topmeters

    monkeypatch.setattr(topmeters, "MAX_WALKED", 10)
    found = top_meter_totals(storage, DAYS, no_open_totals(), 10, ["East"])
    assert len(found) == len(summed(storage, DAYS, "East"))
    pd.testing.assert_frame_equal(top(found, 10), top(summed(storage, DAYS, "East"), 10),
                                  check_dtype=False)
