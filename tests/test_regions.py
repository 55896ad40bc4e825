"""Region-wise frames for the management dashboard, on a real SQLite file."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from metermatrix import queries, regions
from metermatrix.periods import custom_period, resolve_period
from metermatrix.slots import slots_elapsed
from metermatrix.storage import UNASSIGNED, DailyTotal, MeterRecord, Reading, open_storage

TZ = ZoneInfo("Asia/Singapore")
#: 14:10 local: slots 0..27 are due today (the 14:01 packet of slot 27 has been sent).
NOW = datetime(2026, 3, 18, 6, 10, tzinfo=UTC)
TODAY = date(2026, 3, 18)
METERS = {  # meter_id -> region
    100000001: "Central", 100000002: "Central", 100000003: "East", 100000004: "North",
    100000005: "North-East", 100000006: "West", 100000007: None,
}


@pytest.fixture
def storage(tmp_path: Path):
    """Seven meters; closed days 10..17 March (every meter 2 kWh/day, meter 3 silent on the
    15th); today: meters 1, 3, 6 sent 10 readings of 100 Wh; the 14th's readings unclosed."""
    store = open_storage(tmp_path / "data")
    with store.transaction():
        for meter_id, region in METERS.items():
            store.save_meter(MeterRecord(meter_id, f"Owner {meter_id}", "F1234567K", region))
    totals = [DailyTotal(meter_id, TODAY - timedelta(days=back), 2000 + meter_id % 10, 48)
              for back in range(1, 9) for meter_id in METERS
              if not (meter_id == 100000003 and back == 3)]
    store.import_daily_totals(totals)
    with store.transaction():
        store.add_readings([Reading(meter_id, TODAY, slot, 100)
                            for meter_id in (100000001, 100000003, 100000006)
                            for slot in range(10)])
    yield store
    store.close()


def snapshot(storage):
    return regions.take_snapshot(storage, NOW, TZ)


def test_closed_days_are_summed_per_region_with_average_per_meter(storage):
    period = resolve_period("yesterday", NOW, TZ)
    summary = regions.region_summary(storage, period, snapshot(storage))
    assert list(summary.index) == ["Central", "East", "North", "North-East", "West", UNASSIGNED]
    assert summary.loc["Central", "energy_kwh"] == pytest.approx((2001 + 2002) / 1000)
    assert summary.loc["Central", "meters"] == 2
    assert summary.loc[UNASSIGNED, "energy_kwh"] == pytest.approx(2.007)
    assert summary.loc["East", "completeness"] == 1.0
    # The day was imported as totals: its average per meter is a whole day's (the half
    # hours of "yesterday" have no readings to average, on the residents' pages as here).
    day = custom_period(period.first_day, period.first_day, TZ)
    summary = regions.region_summary(storage, day, snapshot(storage))
    assert summary.loc["Central", "average_kwh"] == pytest.approx((2001 + 2002) / 2000)


def test_today_comes_from_the_readings_table(storage):
    summary = regions.region_summary(storage, resolve_period("current-day", NOW, TZ),
                                     snapshot(storage))
    assert summary.loc["Central", "energy_kwh"] == pytest.approx(1.0)
    assert summary.loc["North", "energy_kwh"] == 0
    due = slots_elapsed(TODAY, NOW, TZ)
    assert due == 28
    assert summary.loc["Central", "expected"] == 2 * due
    assert summary.loc["Central", "completeness"] == pytest.approx(10 / (2 * due))


def test_a_missing_day_lowers_the_period_completeness(storage):
    period = custom_period(TODAY - timedelta(days=8), TODAY - timedelta(days=1), TZ)
    summary = regions.region_summary(storage, period, snapshot(storage))
    assert summary.loc["East", "readings"] == 7 * 48
    assert summary.loc["East", "expected"] == 8 * 48
    assert summary.loc["East", "completeness"] == pytest.approx(7 / 8)
    assert summary.loc["West", "completeness"] == 1.0


def test_an_unclosed_past_day_is_summed_from_its_readings(tmp_path):
    store = open_storage(tmp_path / "data")
    with store.transaction():
        store.save_meter(MeterRecord(100000001, "A", "F1234567K", "East"))
        store.add_readings([Reading(100000001, TODAY - timedelta(days=1), slot, 250)
                            for slot in range(48)])
    summary = regions.region_summary(store, resolve_period("yesterday", NOW, TZ),
                                     regions.take_snapshot(store, NOW, TZ))
    assert summary.loc["East", "energy_kwh"] == pytest.approx(12.0)
    assert summary.loc["East", "completeness"] == 1.0
    store.close()


def test_daily_totals_list_every_day_up_to_today(storage):
    daily = regions.region_daily_totals(storage, resolve_period("current-week", NOW, TZ),
                                        snapshot(storage))
    assert list(daily.index) == [date(2026, 3, 16), date(2026, 3, 17), TODAY]
    assert daily.loc[date(2026, 3, 16), "East"] == pytest.approx(2.003)
    assert daily.loc[TODAY, "West"] == pytest.approx(1.0)
    assert daily.loc[TODAY, "North"] == 0


def test_a_period_in_the_future_has_no_days(storage):
    period = custom_period(TODAY + timedelta(days=1), TODAY + timedelta(days=3), TZ)
    summary = regions.region_summary(storage, period, snapshot(storage))
    assert (summary["energy_kwh"] == 0).all()
    assert summary["completeness"].isna().all()


def test_silent_meters_are_those_without_a_reading_today(storage):
    silent = regions.silent_meters(snapshot(storage))
    assert list(silent.index) == [100000002, 100000004, 100000005, 100000007]
    assert silent.loc[100000007, "region"] == UNASSIGNED
    assert list(regions.silent_meters(snapshot(storage), ["Central"]).index) == [100000002]


def test_today_completeness_counts_reporting_meters(storage):
    today = regions.today_completeness(snapshot(storage))
    assert today.loc["Central", "reporting"] == 1
    assert today.loc["Central", "meters"] == 2
    assert today.loc["North", "readings"] == 0
    assert today.loc["East", "completeness"] == pytest.approx(10 / 28)


def test_top_consumers_combine_closed_days_and_today(storage):
    period = resolve_period("current-week", NOW, TZ)
    top = regions.top_consumers(storage, period, snapshot(storage), count=3)
    assert list(top.index) == [100000006, 100000003, 100000001]
    assert top.loc[100000006, "energy_kwh"] == pytest.approx(2 * 2.006 + 1.0)
    assert top.loc[100000006, "name"] == "Owner 100000006"
    east = regions.top_consumers(storage, period, snapshot(storage), regions=["East"])
    assert list(east.index) == [100000003]


def test_storage_day_readings_match_the_readings(storage):
    rows = sorted(storage.meter_day_readings(TODAY))
    assert rows == [(100000001, 1000, 10), (100000003, 1000, 10), (100000006, 1000, 10)]
    totals = dict((m, wh) for m, wh, _ in storage.meter_totals_between(
        TODAY - timedelta(days=3), TODAY - timedelta(days=1)))
    assert totals[100000003] == 2 * 2003
    assert totals[100000001] == 3 * 2001
    assert storage.region_meter_counts() == {"Central": 2, "East": 1, "North": 1,
                                             "North-East": 1, "West": 1, UNASSIGNED: 1}


def test_meter_directory_reads_again_when_a_region_gains_a_meter(storage):
    directory = regions.MeterDirectory()
    first = directory.frame(storage)
    assert directory.frame(storage) is first
    with storage.transaction():
        storage.save_meter(MeterRecord(100000008, "New", "F7654321K", "East"))
    again = directory.frame(storage)
    assert again is not first
    assert again.loc[100000008, "region"] == "East"


def test_average_is_missing_for_a_region_without_meters(tmp_path):
    store = open_storage(tmp_path / "data")
    with store.transaction():
        store.save_meter(MeterRecord(100000001, "A", "F1234567K", "East"))
    summary = regions.region_summary(store, resolve_period("yesterday", NOW, TZ),
                                     regions.take_snapshot(store, NOW, TZ))
    assert math.isnan(summary.loc["West", "average_kwh"])
    assert math.isnan(summary.loc["East", "average_kwh"])  # a meter that never reported
    store.close()


@pytest.fixture
def gappy(tmp_path):
    """East: E1 sends every half hour (100 Wh), E2 only the first 24 of each day (200 Wh),
    E3 never sent anything; 15..17 March closed, today E1 and E2 sent slots 0..9."""
    store = open_storage(tmp_path / "data")
    e1, e2, e3 = 300000001, 300000002, 300000003
    with store.transaction():
        for meter_id in (e1, e2, e3):
            store.save_meter(MeterRecord(meter_id, f"Owner {meter_id}", "F1234567K", "East"))
        for back in range(1, 4):
            day = TODAY - timedelta(days=back)
            store.add_readings([Reading(e1, day, slot, 100) for slot in range(48)])
            store.add_readings([Reading(e2, day, slot, 200) for slot in range(24)])
        store.add_readings([Reading(m, TODAY, slot, 100) for m in (e1, e2) for slot in range(10)])
    for back in range(3, 0, -1):
        store.close_day_from_readings(TODAY - timedelta(days=back))
    yield store
    store.close()


@pytest.mark.parametrize("name", ["yesterday", "current-day", "current-week", "custom"])
def test_the_average_per_meter_is_the_residents_pages_figure(gappy, name):
    """E2's missing half hours count neither as zero nor as a whole meter, nor does E3."""
    period = (custom_period(TODAY - timedelta(days=3), TODAY - timedelta(days=1), TZ)
              if name == "custom" else resolve_period(name, NOW, TZ))
    summary = regions.region_summary(gappy, period, regions.take_snapshot(gappy, NOW, TZ))
    resident = queries.meter_consumption(gappy, 300000001, "East", period, NOW)
    assert summary.loc["East", "average_kwh"] == pytest.approx(resident.region_total_kwh)
    assert summary.loc["East", "meters"] == 3
    if name == "custom":  # per day: 9.6 kWh over 72 readings, times 48 half hours
        assert summary.loc["East", "average_kwh"] == pytest.approx(3 * 9.6 / 72 * 48)


def test_a_meter_added_today_is_due_only_from_today(storage):
    """Meter 8 (East) was created today and sent 10 readings; meter 9 (East) never sent
    anything: neither owes readings for the days before, nor 9 for today."""
    with storage.transaction():
        storage.save_meter(MeterRecord(100000008, "New", "F7654321K", "East"))
        storage.save_meter(MeterRecord(100000009, "Unused", "F7654322K", "East"))
        storage.add_readings([Reading(100000008, TODAY, slot, 100) for slot in range(10)])
    period = resolve_period("current-month", NOW, TZ)
    summary = regions.region_summary(storage, period, snapshot(storage))
    due_today = slots_elapsed(TODAY, NOW, TZ)
    assert summary.loc["East", "meters"] == 3
    assert summary.loc["East", "expected"] == 8 * 48 + 2 * due_today  # meters 3 and 8
    assert summary.loc["East", "readings"] == 7 * 48 + 2 * 10
    today = regions.today_completeness(snapshot(storage))
    assert today.loc["East", "expected"] == 2 * due_today
    assert today.loc["East", "completeness"] == pytest.approx(20 / (2 * due_today))
