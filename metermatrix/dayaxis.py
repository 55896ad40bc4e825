"""Day axes for the daily charts: one slot per day, "1 Nov" labels, the year said once.

Matplotlib's automatic date axis stretches a single day over years and labels a few days
by the hour ("12-01 03"). Here every day is a whole number on the x axis (its ordinal),
the axis runs half a day either side of the period's days, and the tick
labels are days in the "1 Nov 2026" form (without the year when one axis label gives it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
from matplotlib.axes import Axes
from numpy.typing import NDArray

#: Tick labels drawn at most on one axis.
MAX_TICKS = 10


def day_numbers(days: Sequence[date]) -> NDArray[np.float64]:
    """The x position of each day: its proleptic Gregorian ordinal, one unit per day."""
    return np.array([day.toordinal() for day in days], dtype=np.float64)


def day_label(day: date, with_year: bool = True) -> str:
    """E.g. "1 Nov 2026", or "1 Nov" without the year."""
    text = f"{day.day} {day:%b}"
    return f"{text} {day.year}" if with_year else text


def tick_step_days(count: int) -> int:
    """Days between two labelled ticks for an axis of ``count`` days."""
    if count <= MAX_TICKS:
        return 1
    if count <= 2 * MAX_TICKS:
        return 2
    if count <= 7 * MAX_TICKS:
        return 7
    return math.ceil(count / MAX_TICKS)


def set_day_axis(axes: Axes, days: Sequence[date]) -> None:
    """Limit the x axis to ``days`` (half a day either side) and label it by day.

    A period within one year gets "1 Nov" ticks and the year as the axis label; a period
    across years, or a single day, gets "1 Nov 2026" ticks.
    """
    if not days:
        axes.set_xticks([])
        return
    positions = day_numbers(days)
    axes.set_xlim(positions[0] - 0.5, positions[-1] + 0.5)
    one_year = len(days) > 1 and days[0].year == days[-1].year
    every = tick_step_days(len(days))
    chosen = list(range(0, len(days), every))
    axes.set_xticks(positions[chosen], [day_label(days[i], not one_year) for i in chosen])
    axes.set_xlabel(str(days[0].year) if one_year else "")
