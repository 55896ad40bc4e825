"""Daily charts on a day axis: one-day periods stay one day wide, ticks name days."""

from __future__ import annotations

import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from metermatrix import analysis
from metermatrix.dayaxis import day_label, tick_step_days
from metermatrix.periods import custom_period
from metermatrix.regioncharts import figure_png, region_daily_figure

TZ = ZoneInfo("Asia/Singapore")
REGIONS = ["Central", "East", "North", "North-East", "West"]
#: A day as the charts write it: "1 Nov" or "1 Nov 2026".
DAY_FORM = re.compile(r"^\d{1,2} [A-Z][a-z]{2}( \d{4})?$")


def drawn_axes(figure: Figure) -> Axes:
    """The figure's main axes, after drawing it (tick labels exist only then)."""
    figure_png(figure)
    return figure.axes[0]


def tick_labels(axes: Axes) -> list[str]:
    return [label.get_text() for label in axes.get_xticklabels() if label.get_text()]


def x_span_days(axes: Axes) -> float:
    left, right = axes.get_xlim()
    return right - left


def region_days(days: list[date]) -> pd.DataFrame:
    values = np.arange(len(days) * len(REGIONS), dtype=float).reshape(len(days), -1) + 10
    return pd.DataFrame(values, index=pd.Index(days, name="day"), columns=REGIONS)


def test_todays_region_totals_are_bars_on_a_one_day_axis():
    today = date(2026, 12, 3)
    axes = drawn_axes(region_daily_figure(region_days([today]), "Daily totals per region, "
                                          "Today", partial_day=today))
    assert x_span_days(axes) == pytest.approx(1.0)
    assert tick_labels(axes) == ["3 Dec 2026"]
    assert len(axes.patches) >= len(REGIONS)  # one bar per region (and the legend's swatch)
    assert axes.get_legend() is not None
    assert "today so far" in [text.get_text() for text in axes.get_legend().get_texts()]


def test_a_months_region_totals_run_from_its_first_to_its_last_day():
    days = [date(2026, 11, 1) + timedelta(days=offset) for offset in range(30)]
    axes = drawn_axes(region_daily_figure(region_days(days), "Last month"))
    assert x_span_days(axes) == pytest.approx(30.0)
    labels = tick_labels(axes)
    assert labels[0] == "1 Nov" and all(DAY_FORM.match(label) for label in labels)
    assert axes.get_xlabel() == "2026"


def frames_for(days: list[date], region_kwh: list[float]) -> analysis.MeterFrames:
    """Frames of one meter over ``days`` (daily totals only, as the charts read them)."""
    index = pd.Index(days, name="day")
    readings = pd.DataFrame({"meter_id": [], "day": [], "slot": [], "energy_kwh": []})
    return analysis.MeterFrames(
        (999999999,), custom_period(days[0], days[-1], TZ), readings,
        pd.DataFrame({999999999: np.linspace(8, 12, len(days))}, index=index),
        pd.DataFrame({999999999: region_kwh}, index=index), {999999999: "West"})


def test_the_analysts_daily_chart_labels_days_not_hours():
    days = [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]
    axes = drawn_axes(analysis.daily_figure(frames_for(days, [9.0, 9.5, np.nan])))
    labels = tick_labels(axes)
    assert labels == ["1 Dec", "2 Dec", "3 Dec"]
    assert x_span_days(axes) == pytest.approx(3.0)


def test_a_single_closed_days_region_average_is_visible():
    days = [date(2026, 12, 1), date(2026, 12, 2)]  # the second day is still open
    axes = drawn_axes(analysis.daily_figure(frames_for(days, [9.0, np.nan])))
    region_line = [line for line in axes.get_lines() if line.get_label() == "West average"][0]
    assert region_line.get_marker() not in (None, "", "None", " ")


def test_long_ranges_keep_about_ten_labels_with_the_year_across_years():
    assert [tick_step_days(n) for n in (1, 10, 11, 31, 70, 365)] == [1, 1, 2, 7, 7, 37]
    assert day_label(date(2026, 11, 1)) == "1 Nov 2026"
    days = [date(2025, 12, 20) + timedelta(days=offset) for offset in range(20)]
    axes = drawn_axes(region_daily_figure(region_days(days), "Custom range"))
    assert tick_labels(axes)[0] == "20 Dec 2025" and axes.get_xlabel() == ""
