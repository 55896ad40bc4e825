"""Consumption queries against a real SQLite master database in tmp_path."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from metermatrix.periods import last_due_boundary, resolve_period
from metermatrix.queries import (
    RegionAverageCache,
    consumption,
    daily,
    half_hourly,
    meter_consumption,
    region_average,
)
from metermatrix.storage import DailyTotal, MeterRecord, Reading, Storage, open_storage

SGT = ZoneInfo("Asia/Singapore")
UTC = ZoneInfo("UTC")
A, B, C = 111_111_111, 222_222_222, 333_333_333


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(tmp_path / "data")
    with store.transaction():
        store.save_meter(MeterRecord(A, "Aashima", "A3389127I", "West"))
        store.save_meter(MeterRecord(B, "Carlos", "A1234567I", "West"))
        store.save_meter(MeterRecord(C, "Chen", "G7654321K", "East"))
    yield store
    store.close()


def add(storage: Storage, meter_id: int, day: date, energy_wh: dict[int, int]) -> None:
    with storage.transaction():
        storage.add_readings([Reading(meter_id, day, slot, wh) for slot, wh in energy_wh.items()])


def local(year: int, month: int, day: int, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def test_half_hourly_missing_slot_is_nan_and_future_slots_are_pending(storage: Storage) -> None:
    day = date(2026, 11, 27)
    add(storage, A, day, {0: 250, 1: 300, 3: 125})  # slot 2 never arrived
    now = local(2026, 11, 27, 2, 5, UTC)  # slots 0..3 are due (last sent at 02:01)
    frame = half_hourly(storage, [A], resolve_period("current-day", now, UTC), now)
    assert len(frame) == 48
    assert frame["energy_kwh"].iloc[:4].tolist()[:2] == [0.25, 0.3]
    assert math.isnan(frame["energy_kwh"].iloc[2])
    assert frame["status"].iloc[:5].tolist() == ["ok", "ok", "missing", "ok", "pending"]
    assert (frame["status"].iloc[4:] == "pending").all()
    assert frame["energy_kwh"].iloc[4:].isna().all()


def test_half_hourly_gives_one_block_of_rows_per_meter(storage: Storage) -> None:
    day = date(2026, 11, 27)
    add(storage, A, day, {0: 100})
    add(storage, B, day, {0: 200, 1: 210})
    now = local(2026, 11, 27, 1, 5, UTC)
    frame = half_hourly(storage, [A, B], resolve_period("current-day", now, UTC), now)
    assert frame.groupby("meter_id").size().to_dict() == {A: 48, B: 48}
    by_meter = frame.set_index(["meter_id", "slot"])["energy_kwh"]
    assert by_meter[(A, 0)] == 0.1 and math.isnan(by_meter[(A, 1)])
    assert by_meter[(B, 1)] == 0.21


def test_interval_starts_are_local_times_of_the_utility(storage: Storage) -> None:
    # 16:00 UTC on the 26th is midnight of the 27th in Singapore: slot 0 of that day.
    add(storage, A, date(2026, 11, 27), {0: 400})
    now = datetime(2026, 11, 26, 16, 40, tzinfo=UTC)
    singapore = half_hourly(storage, [A], resolve_period("current-day", now, SGT), now)
    assert str(singapore["start"].iloc[0]) == "2026-11-27 00:00:00+08:00"
    assert singapore["energy_kwh"].iloc[0] == 0.4
    utc = half_hourly(storage, [A], resolve_period("current-day", now, UTC), now)
    assert str(utc["start"].iloc[0]) == "2026-11-26 00:00:00+00:00"
    assert utc["energy_kwh"].isna().all()


def test_prev_hr_spans_midnight_and_takes_yesterdays_last_slots(storage: Storage) -> None:
    add(storage, A, date(2026, 11, 26), {46: 310, 47: 320})
    now = local(2026, 11, 27, 0, 10, SGT)  # the 00:01 packet (slot 47) is due
    frame = consumption(storage, [A], resolve_period("prev-hr", now, SGT), now)
    assert frame["slot"].tolist() == [46, 47]
    assert frame["energy_kwh"].tolist() == [0.31, 0.32]


def test_daily_uses_closed_totals_and_sums_todays_readings_so_far(storage: Storage) -> None:
    storage.import_daily_totals([DailyTotal(A, date(2026, 11, 23), 9_500, 48),
                                 DailyTotal(A, date(2026, 11, 24), 4_000, 40)])
    add(storage, A, date(2026, 11, 27), {0: 300, 1: 200})
    now = local(2026, 11, 27, 1, 10, SGT)
    frame = daily(storage, [A], resolve_period("current-week", now, SGT), now)
    assert [str(day) for day in frame["day"]] == [
        "2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    assert frame["status"].tolist() == ["complete", "incomplete", "missing", "missing", "today"]
    assert frame["energy_kwh"].iloc[0] == 9.5 and frame["energy_kwh"].iloc[4] == 0.5
    assert frame["energy_kwh"].iloc[2:4].isna().all()
    assert frame["readings"].tolist() == [48, 40, 0, 0, 2]


def test_daily_sums_a_past_day_that_was_never_closed(storage: Storage) -> None:
    add(storage, A, date(2026, 11, 25), {slot: 100 for slot in range(48)})
    now = local(2026, 11, 27, 9, 0, UTC)
    frame = daily(storage, [A], resolve_period("current-week", now, UTC), now)
    row = frame[frame["day"] == date(2026, 11, 25)].iloc[0]
    assert row["energy_kwh"] == 4.8 and row["status"] == "complete"


def test_prev_month_in_january_is_december_with_31_days(storage: Storage) -> None:
    storage.import_daily_totals([DailyTotal(A, date(2025, 12, 31), 8_000, 48),
                                 DailyTotal(A, date(2025, 11, 30), 7_000, 48)])
    now = local(2026, 1, 15, 12, 0, SGT)
    period = resolve_period("prev-month", now, SGT)
    frame = daily(storage, [A], period, now)
    assert len(frame) == 31 and frame["day"].iloc[0] == date(2025, 12, 1)
    assert frame["energy_kwh"].iloc[-1] == 8.0
    result = meter_consumption(storage, A, "West", period, now)
    assert result.previous.first_day == date(2025, 11, 1)
    assert result.previous_total_kwh == 7.0  # the whole of November
    assert math.isnan(result.rows["previous_kwh"].iloc[30])  # November has no 31st


def test_a_29_day_february_has_29_rows(storage: Storage) -> None:
    storage.import_daily_totals([DailyTotal(A, date(2028, 2, 29), 6_000, 48)])
    now = local(2028, 3, 2, 8, 0, UTC)
    frame = daily(storage, [A], resolve_period("prev-month", now, UTC), now)
    assert len(frame) == 29 and frame["day"].iloc[-1] == date(2028, 2, 29)
    assert frame["energy_kwh"].iloc[-1] == 6.0
    leap_day = local(2028, 2, 29, 20, 0, UTC)
    month = daily(storage, [A], resolve_period("current-month", leap_day, UTC), leap_day)
    assert len(month) == 29 and month["status"].iloc[-1] == "today"


def test_region_average_is_per_reporting_meter(storage: Storage) -> None:
    day = date(2026, 11, 27)
    add(storage, A, day, {0: 100, 1: 300})
    add(storage, B, day, {0: 300})  # B missed slot 1: the average is over A alone
    add(storage, C, day, {0: 5_000})  # another region
    now = local(2026, 11, 27, 1, 10, UTC)
    frame = region_average(storage, "West", resolve_period("current-day", now, UTC), now)
    assert frame["average_kwh"].iloc[:2].tolist() == [0.2, 0.3]
    assert frame["average_kwh"].iloc[2:].isna().all()


def test_daily_region_average_adds_today_to_closed_days(storage: Storage) -> None:
    storage.import_daily_totals([DailyTotal(A, date(2026, 11, 26), 10_000, 48),
                                 DailyTotal(B, date(2026, 11, 26), 6_000, 48)])
    add(storage, A, date(2026, 11, 27), {0: 100, 1: 300})
    add(storage, B, date(2026, 11, 27), {0: 300})
    now = local(2026, 11, 27, 1, 10, UTC)
    frame = region_average(storage, "West", resolve_period("current-week", now, UTC), now)
    by_day = dict(zip(frame["day"], frame["average_kwh"], strict=True))
    assert by_day[date(2026, 11, 26)] == 8.0
    # today so far: 700 Wh over 3 readings, times the 2 half hours that have data
    assert by_day[date(2026, 11, 27)] == pytest.approx(0.7 / 3 * 2)
    assert math.isnan(by_day[date(2026, 11, 25)])


def test_a_gappy_meter_counts_for_the_half_hours_it_reported(storage: Storage) -> None:
    # B sent 12 of 48 readings: counting it as a whole meter would halve the average
    storage.import_daily_totals([DailyTotal(A, date(2026, 11, 26), 10_000, 48),
                                 DailyTotal(B, date(2026, 11, 26), 1_500, 12)])
    now = local(2026, 11, 27, 1, 10, UTC)
    frame = region_average(storage, "West", resolve_period("current-week", now, UTC), now)
    by_day = dict(zip(frame["day"], frame["average_kwh"], strict=True))
    assert by_day[date(2026, 11, 26)] == pytest.approx(11.5 / 60 * 48)


def test_open_day_compares_with_yesterday_up_to_the_same_time(storage: Storage) -> None:
    add(storage, A, date(2026, 11, 26), {slot: 100 for slot in range(48)})
    add(storage, A, date(2026, 11, 27), {0: 500, 1: 500, 2: 500})
    now = local(2026, 11, 27, 2, 10, SGT)  # slots 0..3 due, slot 3 missing
    result = meter_consumption(storage, A, "West", resolve_period("current-day", now, SGT), now)
    assert result.total_kwh == pytest.approx(1.5)
    assert result.previous_total_kwh == pytest.approx(0.4)  # yesterday's first 4 slots only
    assert result.due == 4 and result.missing == 1 and result.is_open
    assert result.rows["previous_kwh"].iloc[47] == 0.1  # the chart still shows all of it


def test_totals_are_nan_when_there_is_nothing_to_add(storage: Storage) -> None:
    now = local(2026, 11, 27, 12, 1, UTC)  # the 11:30-12:00 packet is due from 12:01
    result = meter_consumption(storage, A, "West", resolve_period("current-day", now, UTC), now)
    assert math.isnan(result.total_kwh) and math.isnan(result.region_total_kwh)
    assert result.missing == result.due == 24


def test_region_average_cache_reuses_a_frame_until_it_is_too_old(storage: Storage) -> None:
    clock = [0.0]
    cache = RegionAverageCache(max_age_s=60, clock=lambda: clock[0])
    now = local(2026, 11, 27, 1, 10, UTC)
    period = resolve_period("current-day", now, UTC)
    first = cache.get(storage, "West", period, now)
    add(storage, A, date(2026, 11, 27), {0: 100})
    assert cache.get(storage, "West", period, now) is first
    clock[0] = 61.0
    assert cache.get(storage, "West", period, now)["average_kwh"].iloc[0] == 0.1


def test_region_average_cache_starts_afresh_when_a_new_half_hour_is_due(
        storage: Storage) -> None:
    cache = RegionAverageCache(clock=lambda: 0.0)
    now = local(2026, 11, 27, 1, 10, UTC)
    period = resolve_period("current-day", now, UTC)
    cache.get(storage, "West", period, now)
    add(storage, A, date(2026, 11, 27), {2: 700})
    later = now + timedelta(minutes=30)
    assert cache.get(storage, "West", period, later)["average_kwh"].iloc[2] == 0.7


def test_meter_consumption_with_cache_equals_without(storage: Storage) -> None:
    add(storage, A, date(2026, 11, 27), {0: 100, 1: 150})
    add(storage, B, date(2026, 11, 27), {0: 300, 1: 50})
    now = local(2026, 11, 27, 1, 10, UTC)
    period = resolve_period("current-day", now, UTC)
    plain = meter_consumption(storage, A, "West", period, now)
    cached = meter_consumption(storage, A, "West", period, now, RegionAverageCache())
    assert np.array_equal(plain.rows["region_average_kwh"].to_numpy(),
                          cached.rows["region_average_kwh"].to_numpy(), equal_nan=True)
    assert plain.region_total_kwh == pytest.approx(0.3)


LIKE_FOR_LIKE = [  # (period, now): start, middle and end of a week and of a month
    ("current-week", (2026, 11, 23, 0, 40)),  # Monday: one half hour due
    ("current-week", (2026, 11, 25, 13, 15)),  # Wednesday afternoon
    ("current-week", (2026, 11, 29, 23, 50)),  # Sunday night
    ("current-month", (2026, 11, 1, 5, 0)),
    ("current-month", (2026, 11, 15, 12, 0)),
    ("current-month", (2026, 12, 31, 23, 45)),  # longer than November: capped at its end
]


@pytest.mark.parametrize("tz", [UTC, SGT], ids=["UTC", "Singapore"])
@pytest.mark.parametrize(("name", "when"), LIKE_FOR_LIKE)
def test_an_open_period_is_compared_with_the_previous_up_to_the_same_offset(
        storage: Storage, tz: ZoneInfo, name: str, when: tuple[int, int, int, int, int]) -> None:
    now = local(*when, tz)
    period = resolve_period(name, now, tz)
    previous = period.previous()
    for day in previous.days():  # 100 Wh in every half hour of the previous period
        add(storage, A, day, {slot: 100 for slot in range(48)})
    result = meter_consumption(storage, A, "West", period, now)
    due_s = (last_due_boundary(now, tz) - period.start).total_seconds()
    previous_s = (previous.end - previous.start).total_seconds()
    half_hours = int(min(due_s, previous_s) // 1800)
    assert result.previous_total_kwh == pytest.approx(half_hours * 0.1)


@pytest.mark.parametrize("name", ["prev-hr", "current-day", "current-week", "current-month"])
def test_todays_region_sums_answer_as_the_database_does(storage: Storage, name: str) -> None:
    from metermatrix.meterregions import MeterRegions
    from metermatrix.today import TodayStore

    today = date(2026, 11, 27)
    storage.import_daily_totals([DailyTotal(A, date(2026, 11, 24), 9_000, 48),
                                 DailyTotal(B, date(2026, 11, 24), 7_000, 40)])
    add(storage, A, date(2026, 11, 25), {slot: 90 + slot for slot in range(48)})
    storage.close_day_from_readings(date(2026, 11, 25))
    readings = {A: {0: 100, 1: 300, 5: 40}, B: {0: 300, 7: 1_000}, C: {0: 5_000}}
    store = TodayStore(today, 50_000, regions=MeterRegions.from_storage(storage))
    for meter_id, slots in readings.items():
        add(storage, meter_id, today, slots)
        for slot, energy_wh in slots.items():
            store.put(meter_id, slot, energy_wh)
    now = local(2026, 11, 27, 4, 10, UTC)
    period = resolve_period(name, now, UTC)
    for region in ("West", "East", None):
        from_database = region_average(storage, region, period, now)
        from_store = region_average(storage, region, period, now, store)
        assert from_store.equals(from_database)
    assert not region_average(storage, "West", period, now)["average_kwh"].isna().all()
    store.put(A, 2, 700)  # in today's store only: the store, not the database, answers today
    day_frame = region_average(storage, "West", resolve_period("current-day", now, UTC), now,
                               store)
    assert day_frame["average_kwh"].iloc[2] == pytest.approx(0.7)
