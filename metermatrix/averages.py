"""The one definition of a region's average consumption per meter, for any interval.

DEFINITION (below) is the sentence the pages show. A half-hourly interval has one half
hour, a day 48 (or the half hours due so far today), a period the sum over its days. The
inputs are region aggregates only (``Storage.region_days_between`` per day,
``Storage.region_slot_energy`` per half hour), never the meters' individual readings, so
the figure costs the same for ten meters and for a city.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import numpy as np
import numpy.typing as npt

from .slots import SLOTS_PER_DAY
from .storage.base import RegionDay

DEFINITION = ("The average per meter is the region's energy divided by the half-hour readings "
              "its meters sent, times the half hours in the interval: what a meter of the "
              "region that reported every half hour would have used, so missing readings "
              "count neither as zero nor as a whole meter.")


def average_per_meter_kwh(energy_wh: npt.ArrayLike, readings: npt.ArrayLike,
                          half_hours: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The region's average per meter [kWh] for each interval; NaN where no reading came.

    ``energy_wh`` [Wh] and ``readings`` are the region's sums over its meters for each
    interval, ``half_hours`` the number of half hours each interval covers.
    """
    energy = np.asarray(energy_wh, dtype=np.float64)
    count = np.asarray(readings, dtype=np.float64)
    length = np.asarray(half_hours, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.where(count > 0, energy / count * length / 1000, np.nan)
    return np.asarray(average, dtype=np.float64)


def region_day_averages_kwh(rows: Iterable[RegionDay], region: str
                            ) -> dict[date, float]:
    """Per closed day of ``region``: its average per meter [kWh] over the day's 48 half hours."""
    days = [row for row in rows if row.region == region]
    averages = average_per_meter_kwh([row.energy_wh for row in days],
                                     [row.readings for row in days], SLOTS_PER_DAY)
    return {row.day: float(value) for row, value in zip(days, averages, strict=True)}


def region_slot_averages_kwh(rows: Iterable[tuple[date, int, int, int]]
                             ) -> dict[tuple[date, int], float]:
    """Per (day, slot) of ``Storage.region_slot_energy`` rows: the average per meter [kWh]."""
    table = list(rows)
    averages = average_per_meter_kwh([energy for _, _, energy, _ in table],
                                     [readings for _, _, _, readings in table], 1)
    return {(day, slot): float(value)
            for (day, slot, _, _), value in zip(table, averages, strict=True)}
