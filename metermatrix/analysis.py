"""Analysts' views of chosen meters: heat map, load profile, daily totals, region comparison.

Every frame is in kilowatt-hours [kWh]. Half-hourly data comes from the ``readings`` table;
daily totals from ``daily_totals`` for closed days and from the readings for days not yet
closed (today). Region averages per meter are the residents' pages' (``averages.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from metermatrix.averages import region_day_averages_kwh
from metermatrix.dayaxis import day_numbers, set_day_axis
from metermatrix.periods import Period
from metermatrix.slots import SLOTS_PER_DAY, local_day
from metermatrix.storage import UNASSIGNED, Storage

#: Heat-map cells where some chosen meter sent no reading.
INCOMPLETE_COLOUR = "#d9dee2"
#: Time of day each slot starts, "00:00" .. "23:30" (the chart axis of a day).
SLOT_STARTS = tuple(f"{slot // 2:02d}:{30 * (slot % 2):02d}" for slot in range(SLOTS_PER_DAY))


@dataclass(frozen=True)
class MeterFrames:
    """The data behind the analyst's charts for some meters and a period.

    ``readings``: columns ``meter_id``, ``day``, ``slot`` (0..47), ``energy_kwh``.
    ``daily``: index ``day`` (every day of the period up to today), one column per meter [kWh],
    NaN where a meter has no total. ``region_daily``: same shape, the average per meter of
    each meter's region that day [kWh]. ``regions``: meter_id -> region.
    """

    meter_ids: tuple[int, ...]
    period: Period
    readings: pd.DataFrame
    daily: pd.DataFrame
    region_daily: pd.DataFrame
    regions: dict[int, str]


def meter_readings(storage: Storage, meter_ids: Sequence[int], first: date,
                   last: date) -> pd.DataFrame:
    """Half-hourly readings: columns ``meter_id``, ``day``, ``slot``, ``energy_kwh`` [kWh]."""
    rows = storage.readings_between(list(meter_ids), first, last)
    return pd.DataFrame({
        "meter_id": np.fromiter((r.meter_id for r in rows), dtype=np.int64, count=len(rows)),
        "day": [r.day for r in rows],
        "slot": np.fromiter((r.slot for r in rows), dtype=np.int64, count=len(rows)),
        "energy_kwh": np.fromiter((r.energy_wh / 1000 for r in rows), dtype=float,
                                  count=len(rows)),
    })


def _days(period: Period, now: datetime) -> list[date]:
    today = local_day(now, period.start.tzinfo) if period.start.tzinfo else now.date()
    return [day for day in period.days() if day <= today]


def daily_totals(storage: Storage, meter_ids: Sequence[int], days: Sequence[date],
                 readings: pd.DataFrame) -> pd.DataFrame:
    """Index ``day``, one column per meter [kWh]: closed days' totals, other days summed
    from ``readings``; NaN where there is nothing."""
    closed = set(storage.closed_days())
    frame = pd.DataFrame(np.nan, index=pd.Index(list(days), name="day"),
                         columns=pd.Index(list(meter_ids), name="meter_id"))
    if days:
        for total in storage.daily_totals_between(list(meter_ids), days[0], days[-1]):
            if total.day in closed and total.day in frame.index:
                frame.loc[total.day, total.meter_id] = total.energy_wh / 1000
    open_rows = readings[~readings["day"].isin(closed) & readings["day"].isin(list(days))]
    summed = open_rows.groupby(["day", "meter_id"], as_index=False)["energy_kwh"].sum()
    for day, meter_id, energy_kwh in summed.itertuples(index=False):
        frame.loc[day, meter_id] = energy_kwh
    return frame


def region_daily_average(storage: Storage, regions: dict[int, str],
                         days: Sequence[date]) -> pd.DataFrame:
    """Index ``day``, one column per meter: its region's average per meter [kWh], as the
    residents' pages define it (``averages.region_day_averages_kwh``; closed days only,
    NaN otherwise)."""
    per_region: dict[str, dict[date, float]] = {}
    if days:
        rows = storage.region_days_between(days[0], days[-1])
        per_region = {region: region_day_averages_kwh(rows, region)
                      for region in set(regions.values())}
    return pd.DataFrame(
        {meter_id: [per_region.get(region, {}).get(day, np.nan) for day in days]
         for meter_id, region in regions.items()},
        index=pd.Index(list(days), name="day"),
    )


def load_meter_frames(storage: Storage, meter_ids: Sequence[int], period: Period,
                      now: datetime) -> MeterFrames:
    """Everything the analyst's charts need for ``meter_ids`` over ``period``."""
    ids = tuple(dict.fromkeys(meter_ids))
    days = _days(period, now)
    readings = (meter_readings(storage, ids, days[0], days[-1]) if days and ids
                else meter_readings(storage, [], period.first_day, period.first_day))
    regions = {}
    for meter_id in ids:
        meter = storage.get_meter(meter_id)
        regions[meter_id] = (meter.region if meter and meter.region else UNASSIGNED)
    return MeterFrames(ids, period, readings, daily_totals(storage, ids, days, readings),
                       region_daily_average(storage, regions, days), regions)


def heatmap_frame(readings: pd.DataFrame, meter_ids: Sequence[int]) -> pd.DataFrame:
    """Index ``day``, 48 columns (slot start "00:00".."23:30"): energy summed over
    ``meter_ids`` [kWh]; NaN (incomplete) where any of them sent no reading, so a half hour
    with a silent meter never passes for a complete one."""
    chosen = readings[readings["meter_id"].isin(list(meter_ids))]
    slots = range(SLOTS_PER_DAY)
    energy = chosen.pivot_table(index="day", columns="slot", values="energy_kwh",
                                aggfunc="sum").reindex(columns=slots)
    reported = chosen.pivot_table(index="day", columns="slot", values="energy_kwh",
                                  aggfunc="count").reindex(index=energy.index, columns=slots)
    table = energy.where(reported >= len(set(meter_ids))).astype(float)
    table.columns = pd.Index(SLOT_STARTS, name="slot")
    table.index.name = "day"
    return table


def load_profile(readings: pd.DataFrame) -> pd.DataFrame:
    """Average day: index slot start "00:00".."23:30", one column per meter, the mean energy
    of that half hour over the days with a reading [kWh]."""
    table = readings.pivot_table(index="slot", columns="meter_id", values="energy_kwh",
                                 aggfunc="mean").reindex(range(SLOTS_PER_DAY))
    table.index = pd.Index(SLOT_STARTS, name="slot")
    return table


def region_comparison(frames: MeterFrames) -> pd.DataFrame:
    """Per meter over the days both are known: index ``meter_id``; ``region``,
    ``energy_kwh``, ``region_average_kwh`` [kWh], ``ratio`` (meter / region average)."""
    rows = []
    for meter_id in frames.meter_ids:
        both = pd.DataFrame({"meter": frames.daily[meter_id],
                             "region": frames.region_daily[meter_id]}).dropna()
        meter_kwh, region_kwh = float(both["meter"].sum()), float(both["region"].sum())
        rows.append((meter_id, frames.regions[meter_id], meter_kwh, region_kwh,
                     meter_kwh / region_kwh if region_kwh else np.nan))
    columns = ["meter_id", "region", "energy_kwh", "region_average_kwh", "ratio"]
    return pd.DataFrame(rows, columns=columns).set_index("meter_id")


def heatmap_figure(frames: MeterFrames) -> Figure:
    """Day x half-hour heat map of the chosen meters' energy [kWh]."""
    table = heatmap_frame(frames.readings, frames.meter_ids)
    height_in = max(2.4, 0.9 + 0.22 * len(table.index))
    figure = Figure(figsize=(9.0, height_in))
    figure.subplots_adjust(left=0.12, right=0.98, bottom=0.75 / height_in,
                           top=1 - 0.35 / height_in)
    axes = figure.add_subplot()
    if table.empty:
        axes.text(0.5, 0.5, "No half-hourly readings in this period", ha="center",
                  va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return figure
    colours = colormaps["viridis"].with_extremes(bad=INCOMPLETE_COLOUR)
    image = axes.imshow(table.to_numpy(dtype=float), aspect="auto", cmap=colours,
                        interpolation="nearest")
    axes.set_xticks(range(0, SLOTS_PER_DAY, 4), SLOT_STARTS[::4], fontsize=8)
    step = max(1, len(table.index) // 12)
    axes.set_yticks(range(0, len(table.index), step),
                    [day.isoformat() for day in table.index[::step]], fontsize=8)
    axes.set_xlabel("Half hour starting (grey: a chosen meter sent no reading)")
    figure.colorbar(image, ax=axes, label="kWh per half hour")
    axes.set_title(f"Half-hourly energy, {_meters_label(frames.meter_ids)}")
    return figure


def profile_figure(frames: MeterFrames) -> Figure:
    """Average daily load profile per meter [kWh per half hour]."""
    table = load_profile(frames.readings)
    figure = Figure(figsize=(9.0, 3.2))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.9)
    axes = figure.add_subplot()
    for number, meter_id in enumerate(frames.meter_ids):
        if meter_id in table.columns:
            axes.plot(range(SLOTS_PER_DAY), table[meter_id].to_numpy(), color=f"C{number}",
                      label=str(meter_id))
    axes.set_xticks(range(0, SLOTS_PER_DAY, 4), SLOT_STARTS[::4], fontsize=8)
    axes.set_ylabel("kWh per half hour")
    axes.grid(alpha=0.3)
    if len(table.columns):
        axes.legend(fontsize=8, frameon=False)
    axes.set_title("Average daily load profile")
    return figure


def daily_figure(frames: MeterFrames) -> Figure:
    """Daily totals per meter (solid) and their region's average per meter (dashed) [kWh]."""
    figure = Figure(figsize=(9.0, 3.2))
    figure.subplots_adjust(left=0.08, right=0.8, bottom=0.18, top=0.9)
    axes = figure.add_subplot()
    days = list(frames.daily.index)
    x = day_numbers(days)
    for number, meter_id in enumerate(frames.meter_ids):
        axes.plot(x, frames.daily[meter_id].to_numpy(), marker="o", markersize=4,
                  color=f"C{number}", label=f"{meter_id}")
        axes.plot(x, frames.region_daily[meter_id].to_numpy(), linestyle="--", marker="x",
                  markersize=5, color=f"C{number}", label=f"{frames.regions[meter_id]} average")
    axes.set_ylabel("kWh per day")
    axes.grid(alpha=0.3)
    if frames.meter_ids:
        axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    set_day_axis(axes, days)
    axes.set_title("Daily totals and the region's average")
    return figure


def comparison_figure(frames: MeterFrames) -> Figure:
    """Each meter's energy over the period beside its region's average per meter [kWh]."""
    table = region_comparison(frames)
    figure = Figure(figsize=(9.0, 3.0))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.88)
    axes = figure.add_subplot()
    positions = np.arange(len(table.index))
    meter_bars = axes.bar(positions - 0.2, table["energy_kwh"].to_numpy(), 0.4, label="Meter")
    region_bars = axes.bar(positions + 0.2, table["region_average_kwh"].to_numpy(), 0.4,
                           label="Region average per meter", color="#9aa5ad")
    axes.bar_label(meter_bars, labels=[f"{r:.0%}" if r == r else "" for r in table["ratio"]],
                   fontsize=8)
    axes.bar_label(region_bars, fmt="%.1f", fontsize=8)
    axes.set_xticks(positions, [f"{m}\n{table.loc[m, 'region']}" for m in table.index],
                    fontsize=8)
    axes.set_ylabel("kWh over the period")
    axes.margins(y=0.15)
    axes.legend(fontsize=8, frameon=False)
    axes.set_title("Compared with the region's average (label: meter as % of region)")
    return figure


def _meters_label(meter_ids: Sequence[int]) -> str:
    if len(meter_ids) <= 3:
        return "meter " + ", ".join(str(m) for m in meter_ids)
    return f"{len(meter_ids)} meters"
