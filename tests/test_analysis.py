"""Analysts' frames and charts for chosen meters, on a real SQLite file."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from metermatrix import analysis, queries
from metermatrix.periods import custom_period, resolve_period
from metermatrix.regioncharts import figure_png
from metermatrix.storage import DailyTotal, MeterRecord, Reading, open_storage

TZ = ZoneInfo("UTC")
NOW = datetime(2026, 3, 18, 12, 5, tzinfo=UTC)
TODAY = date(2026, 3, 18)
YESTERDAY = TODAY - timedelta(days=1)
A, B, C = 200000001, 200000002, 200000003


@pytest.fixture
def storage(tmp_path: Path):
    """A and C in East, B in West; yesterday closed with half-hourly readings of A and B;
    today A sent slots 0..3; C (East) only has daily totals."""
    store = open_storage(tmp_path / "data")
    with store.transaction():
        store.save_meter(MeterRecord(A, "A", "F1234567K", "East"))
        store.save_meter(MeterRecord(B, "B", "F1234568K", "West"))
        store.save_meter(MeterRecord(C, "C", "F1234569K", "East"))
        store.add_readings([Reading(A, YESTERDAY, slot, 100 + slot) for slot in range(48)])
        store.add_readings([Reading(B, YESTERDAY, slot, 200) for slot in range(48)])
        store.add_readings([Reading(A, TODAY, slot, 500) for slot in range(4)])
    store.close_day_from_readings(YESTERDAY)
    store.import_daily_totals([DailyTotal(C, YESTERDAY, 9000, 48)])
    yield store
    store.close()


def test_heatmap_has_a_row_per_day_and_a_column_per_half_hour(storage):
    period = custom_period(YESTERDAY, TODAY, TZ)
    frames = analysis.load_meter_frames(storage, [A, B], period, NOW)
    table = analysis.heatmap_frame(frames.readings, [A, B])
    assert list(table.index) == [YESTERDAY, TODAY]
    assert table.shape == (2, 48)
    assert table.columns[0] == "00:00" and table.columns[47] == "23:30"
    assert table.loc[YESTERDAY, "00:30"] == pytest.approx((101 + 200) / 1000)
    alone = analysis.heatmap_frame(frames.readings, [A])
    assert alone.loc[TODAY, "01:30"] == pytest.approx(0.5)
    assert math.isnan(alone.loc[TODAY, "02:00"])


def test_a_half_hour_one_chosen_meter_missed_is_incomplete_in_the_heat_map(storage):
    """Today A sent slots 0..3 and B nothing: the sum of A alone is not a complete cell."""
    period = custom_period(YESTERDAY, TODAY, TZ)
    frames = analysis.load_meter_frames(storage, [A, B], period, NOW)
    table = analysis.heatmap_frame(frames.readings, frames.meter_ids)
    assert table.loc[TODAY, ["00:00", "00:30", "01:00", "01:30"]].isna().all()
    assert table.loc[YESTERDAY].notna().all()
    assert figure_png(analysis.heatmap_figure(frames)).startswith(b"\x89PNG")


def test_load_profile_averages_each_half_hour_over_the_days(storage):
    period = custom_period(YESTERDAY, TODAY, TZ)
    frames = analysis.load_meter_frames(storage, [A], period, NOW)
    profile = analysis.load_profile(frames.readings)
    assert profile.loc["00:00", A] == pytest.approx((0.100 + 0.500) / 2)
    assert profile.loc["12:00", A] == pytest.approx(0.124)


def test_daily_totals_use_closed_totals_and_todays_readings(storage):
    frames = analysis.load_meter_frames(storage, [A, B], resolve_period("current-week", NOW, TZ),
                                        NOW)
    assert list(frames.daily.index) == [date(2026, 3, 16), YESTERDAY, TODAY]
    assert frames.daily.loc[YESTERDAY, A] == pytest.approx(sum(100 + s for s in range(48)) / 1000)
    assert frames.daily.loc[TODAY, A] == pytest.approx(2.0)
    assert math.isnan(frames.daily.loc[TODAY, B])
    assert math.isnan(frames.daily.loc[date(2026, 3, 16), A])


def test_region_average_is_the_region_energy_per_reporting_meter(storage):
    frames = analysis.load_meter_frames(storage, [A, B], resolve_period("yesterday", NOW, TZ),
                                        NOW)
    a_total = sum(100 + s for s in range(48))
    assert frames.region_daily.loc[YESTERDAY, A] == pytest.approx((a_total + 9000) / 2 / 1000)
    assert frames.region_daily.loc[YESTERDAY, B] == pytest.approx(9.6)
    comparison = analysis.region_comparison(frames)
    assert comparison.loc[B, "ratio"] == pytest.approx(1.0)
    assert comparison.loc[A, "ratio"] == pytest.approx(a_total / ((a_total + 9000) / 2))
    assert comparison.loc[A, "region"] == "East"


def test_every_chart_renders_even_without_readings(storage):
    for meters in ([A, B], [C], []):
        frames = analysis.load_meter_frames(storage, meters,
                                            resolve_period("current-month", NOW, TZ), NOW)
        for draw in (analysis.heatmap_figure, analysis.profile_figure, analysis.daily_figure,
                     analysis.comparison_figure):
            assert figure_png(draw(frames)).startswith(b"\x89PNG")


def test_a_meter_asked_for_twice_is_shown_once(storage):
    frames = analysis.load_meter_frames(storage, [A, A, B],
                                        resolve_period("yesterday", NOW, TZ), NOW)
    assert frames.meter_ids == (A, B)
    assert list(frames.daily.columns) == [A, B]


def test_the_region_average_is_the_residents_pages_for_a_gappy_meter(tmp_path):
    """G sent half of yesterday's half hours: it counts neither as zero nor as a meter."""
    store = open_storage(tmp_path / "data")
    gappy = 200000009
    with store.transaction():
        store.save_meter(MeterRecord(A, "A", "F1234567K", "East"))
        store.save_meter(MeterRecord(gappy, "G", "F1234560K", "East"))
        store.add_readings([Reading(A, YESTERDAY, slot, 100) for slot in range(48)])
        store.add_readings([Reading(gappy, YESTERDAY, slot, 200) for slot in range(24)])
    store.close_day_from_readings(YESTERDAY)
    period = custom_period(YESTERDAY, YESTERDAY, TZ)
    frames = analysis.load_meter_frames(store, [A], period, NOW)
    resident = queries.region_total_kwh(store, "East", period, NOW)
    assert frames.region_daily.loc[YESTERDAY, A] == pytest.approx(resident)
    assert resident == pytest.approx(9.6 / 72 * 48)
    store.close()
