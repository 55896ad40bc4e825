"""A year of a meter's consumption as 12 monthly totals beside the year before: rows and chart.

The chart is drawn with the consumption chart's parts (``charts``): one figure-to-SVG
path, the same colours and legend, with a pair of bars per month: the year before (grey,
left) and this year (coloured by how complete the month's readings are, right).
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from metermatrix.charts import (
    GRID,
    INK,
    MISSING_EDGE,
    MISSING_FACE,
    PREVIOUS,
    REGION,
    STYLES,
    WIDE,
    Layout,
    _draw_legend,
    _new_plot,
    _Plot,
    _top,
    figure_to_svg,
    label_step,
    svg_labels,
)
from metermatrix.queries import MeterConsumption

MONTH_LABELS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                "Dec")
_PAST = ("complete", "incomplete", "missing")


def _sum(values: pd.Series) -> float:
    """The sum of the values that exist [kWh], NaN when none does."""
    array = values.to_numpy(dtype=float)
    return float(np.nansum(array)) if np.isfinite(array).any() else math.nan


def _month_status(statuses: list[str], days: list[date], first_day: date | None) -> str:
    if all(status == "pending" for status in statuses):
        return "pending"
    if first_day is None or days[-1] < first_day:
        return "before"
    if "today" in statuses:
        return "today"
    counted = [status for status, day in zip(statuses, days, strict=True)
               if status in _PAST and day >= first_day]
    if counted and all(status == "missing" for status in counted):
        return "missing"
    whole = days[0] >= first_day and all(status == "complete" for status in counted)
    return "complete" if whole else "incomplete"  # the month's first reading day counts


def month_rows(result: MeterConsumption, previous_daily: pd.DataFrame,
               first_day: date | None) -> pd.DataFrame:
    """Twelve rows, one per month of ``result``'s year (daily rows).

    Columns: ``start`` (the month's first day), ``month`` (1..12), ``energy_kwh`` [kWh]
    (NaN without any reading), ``status`` ("complete", "incomplete": days missing or
    before the meter's first reading, "missing", "today", "pending", or "before" the
    first reading), ``previous_kwh`` [kWh] (the same
    month of the year before, from ``previous_daily``: ``queries.daily`` rows) and
    ``region_average_kwh`` [kWh per meter, over the month's days so far].
    """
    rows = result.rows
    months = [day.month for day in rows["day"]]
    before_months = [day.month for day in previous_daily["day"]]
    records = []
    for month in range(1, 13):
        chosen = rows[[value == month for value in months]]
        due = chosen[chosen["status"] != "pending"]
        status = _month_status(chosen["status"].tolist(), chosen["day"].tolist(), first_day)
        previous = previous_daily[[value == month for value in before_months]]
        records.append({
            "start": chosen["start"].iloc[0], "month": month,
            "energy_kwh": _sum(due["energy_kwh"]), "status": status,
            "previous_kwh": _sum(previous["energy_kwh"]),
            "region_average_kwh": _sum(due["region_average_kwh"]),
        })
    return pd.DataFrame.from_records(records)


def month_table(months: pd.DataFrame) -> list[tuple[str, float, str, float, float]]:
    """(label, kWh, status, previous kWh, region kWh) of each month begun, for the page."""
    columns = zip(months["start"].tolist(), months["energy_kwh"].astype(float).tolist(),
                  months["status"].astype(str).tolist(),
                  months["previous_kwh"].astype(float).tolist(),
                  months["region_average_kwh"].astype(float).tolist(), strict=True)
    return [(f"{start:%B}", float(energy), str(status), float(before), float(region))
            for start, energy, status, before, region in columns if status != "pending"]


def _bars(x: np.ndarray, heights: np.ndarray, offset: float) -> list[list[tuple[float, float]]]:
    return [[(i + offset - 0.18, 0.0), (i + offset - 0.18, h), (i + offset + 0.18, h),
             (i + offset + 0.18, 0.0)] for i, h in zip(x.tolist(), heights.tolist(), strict=True)]


def _draw_month_grid(plot: _Plot) -> None:
    left, bottom, width, height = plot.layout.plot_box
    levels = [float(v) for v in MaxNLocator(nbins=6, steps=[1, 2, 5, 10]).tick_values(0, plot.top)
              if 0 <= v <= plot.top]
    x0, x1 = -0.6, 11.6
    plot.add(LineCollection([[(x0, v), (x1, v)] for v in levels[1:]], colors=GRID,
                            linewidths=0.6))
    plot.add(LineCollection([[(x0, 0.0), (x1, 0.0)]], colors=INK, linewidths=0.8))
    for level in levels:
        plot.text(left - 0.008, bottom + height * level / plot.top, f"{level:g}",
                  ha="right", va="center")
    every = label_step(list(MONTH_LABELS), plot.layout.plot_width_pt, (1, 2, 3))
    for month, label in list(enumerate(MONTH_LABELS))[::every]:
        plot.text(left + width * (month - x0) / (x1 - x0), bottom - 0.03, label,
                  ha="center", va="top")
    plot.text(0.025, bottom + height / 2, "kWh per month", rotation=90, ha="center",
              va="center")


def _draw_month_bars(plot: _Plot, months: pd.DataFrame, year: int) -> list[tuple[str, Artist]]:
    x = np.arange(12, dtype=float)
    previous = months["previous_kwh"].to_numpy(dtype=float)
    shown = np.isfinite(previous)
    legend: list[tuple[str, Artist]] = []
    if shown.any():
        plot.add(PolyCollection(_bars(x[shown], previous[shown], -0.2), facecolors=PREVIOUS,
                                linewidths=0))
        legend.append((f"{year - 1}", Rectangle((0, 0), 1, 1, facecolor=PREVIOUS, linewidth=0)))
    energy = months["energy_kwh"].to_numpy(dtype=float)
    status = months["status"].to_numpy(dtype=str)
    labels = {"complete": f"{year}", "incomplete": f"{year}, days missing",
              "today": f"{year}, so far", "missing": "No reading"}
    for key, label in labels.items():
        chosen = status == key
        if not chosen.any():
            continue
        _, face, hatch = STYLES[key]
        heights = np.full(int(chosen.sum()), plot.top) if key == "missing" else energy[chosen]
        edge = MISSING_EDGE if key == "missing" else "white" if hatch else face
        plot.add(PolyCollection(_bars(x[chosen], heights, 0.2), facecolors=face if key !=
                                "missing" else MISSING_FACE, edgecolors=edge, hatch=hatch,
                                linewidths=0))
        legend.append((label, Rectangle((0, 0), 1, 1, facecolor=face, edgecolor=edge,
                                        hatch=hatch, linewidth=0.6 if hatch else 0)))
    return legend


def year_svg(months: pd.DataFrame, year: int, region_label: str = "",
             layout: Layout = WIDE) -> str:
    """Twelve pairs of monthly bars (the year before, this year) and the region's average
    meter as a dotted line, as a responsive inline SVG string at ``layout``'s size."""
    plot = _new_plot(12, _top(months), layout)
    _draw_month_grid(plot)
    legend = _draw_month_bars(plot, months, year)
    if region_label:
        style = {"color": REGION, "linestyle": ":", "linewidth": 2.0}
        plot.add(Line2D(np.arange(12, dtype=float) + 0.2,
                        months["region_average_kwh"].to_numpy(dtype=float), marker="o",
                        markersize=2.5, **style))  # type: ignore[arg-type]
        legend.append((region_label, Line2D([0, 1], [0.5, 0.5], **style)))  # type: ignore[arg-type]
    _draw_legend(plot, legend)
    svg = figure_to_svg(plot.figure, layout.id_prefix)
    end = svg.rindex("</svg>")
    return svg[:end] + svg_labels(plot.labels, layout.size_in) + "\n" + svg[end:]
