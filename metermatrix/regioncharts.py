"""Region DataFrames (from ``metermatrix.regions``) -> matplotlib Figures and HTML tables."""

from __future__ import annotations

import html
import io
from datetime import date

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from metermatrix.dayaxis import day_numbers, set_day_axis

#: One colour per region, the same in every chart.
REGION_COLOURS = {
    "Central": "#1f77b4", "East": "#ff7f0e", "North": "#2ca02c", "North-East": "#d62728",
    "West": "#9467bd", "Unassigned": "#7f7f7f",
}


def figure_png(figure: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_svg(figure: Figure) -> bytes:
    """The figure as SVG bytes: sharp at any size and device pixel ratio (text stays text)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "metermatrix"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _colour(region: object) -> str:
    return REGION_COLOURS.get(str(region), "#7f7f7f")


def region_bar_figure(summary: pd.DataFrame, title: str) -> Figure:
    """Two bar charts side by side: total energy and average per meter, per region [kWh]."""
    figure = Figure(figsize=(9.0, 3.4))
    figure.subplots_adjust(left=0.08, right=0.99, bottom=0.12, top=0.86, wspace=0.28)
    total_axes, average_axes = figure.subplots(1, 2)
    regions = [str(region) for region in summary.index]
    colours = [_colour(region) for region in regions]
    for axes, column, label in ((total_axes, "energy_kwh", "Total [kWh]"),
                                (average_axes, "average_kwh", "Average per meter [kWh]")):
        values = summary[column].fillna(0.0).to_numpy()
        bars = axes.bar(regions, values, color=colours)
        axes.bar_label(bars, labels=[f"{value:,.1f}" for value in values], fontsize=8)
        axes.set_ylabel(label)
        axes.tick_params(axis="x", labelsize=8)
        axes.set_ylim(0, max(1.0, float(values.max(initial=0.0)) * 1.15))
        axes.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    return figure


def region_daily_figure(daily: pd.DataFrame, title: str, partial_day: date | None = None
                        ) -> Figure:
    """Daily totals per region over the period as lines [kWh]; ``partial_day`` (today, still
    collecting) is drawn as a hollow marker apart from the lines. A period of one day is
    drawn as one bar per region on a one-day axis (hatched when the day is ``partial_day``)."""
    figure = Figure(figsize=(9.0, 3.4))
    figure.subplots_adjust(left=0.08, right=0.85, bottom=0.16, top=0.9)
    axes = figure.add_subplot()
    days = [day for day in daily.index]
    if len(days) == 1:
        _draw_day_bars(axes, daily, days[0] == partial_day)
    else:
        _draw_day_lines(axes, daily, partial_day)
    axes.set_ylabel("Energy per day [kWh]")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    set_day_axis(axes, days)
    if len(daily.columns):
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes.set_title(title)
    return figure


def _draw_day_lines(axes: Axes, daily: pd.DataFrame, partial_day: date | None) -> None:
    partial = partial_day if partial_day in daily.index else None
    whole, today = daily[daily.index != partial], daily[daily.index == partial]
    marker = "o" if len(whole.index) <= 14 else None
    for region in daily.columns:
        colour = _colour(region)
        axes.plot(day_numbers(list(whole.index)), whole[region].to_numpy(), marker=marker,
                  color=colour, label=str(region))
        if partial is not None:
            axes.plot(day_numbers(list(today.index)), today[region].to_numpy(), marker="o",
                      markerfacecolor="white", color=colour, linestyle="none")
    if partial is not None:
        axes.plot([], [], marker="o", markerfacecolor="white", color="#555", linestyle="none",
                  label="today so far")


def _draw_day_bars(axes: Axes, daily: pd.DataFrame, partial: bool) -> None:
    """One bar per region side by side within the day's slot of the axis."""
    centre = float(day_numbers(list(daily.index))[0])
    width = 0.8 / max(1, len(daily.columns))
    for number, region in enumerate(daily.columns):
        x = centre - 0.4 + width * (number + 0.5)
        colour = _colour(region)
        axes.bar([x], daily[region].fillna(0.0).to_numpy(), width * 0.9, label=str(region),
                 color="white" if partial else colour, edgecolor=colour,
                 hatch="///" if partial else None)
    if partial:
        axes.bar([centre], [0.0], 0.0, color="white", edgecolor="#555", hatch="///",
                 label="today so far")


def _cell(value: object, kind: str) -> str:
    if isinstance(value, float) and pd.isna(value):
        return "&ndash;"
    if kind == "kwh":
        return f"{float(value):,.1f}"  # type: ignore[arg-type]
    if kind == "percent":
        return f"{100 * float(value):.1f}&nbsp;%"  # type: ignore[arg-type]
    if kind == "count":
        return f"{int(value):,}"  # type: ignore[call-overload]
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, columns: dict[str, tuple[str, str]],
               index_label: str, css_class: str) -> str:
    """A small HTML table: ``columns`` maps a column to (heading, kind), kind one of
    "kwh", "percent", "count", "text"; the index is the first column."""
    head = "".join(f"<th>{html.escape(heading)}</th>" for heading, _ in columns.values())
    rows = []
    for key, row in frame.iterrows():
        cells = "".join(f"<td>{_cell(row[column], kind)}</td>"
                        for column, (_, kind) in columns.items())
        rows.append(f"<tr><th>{html.escape(str(key))}</th>{cells}</tr>")
    body = "".join(rows) or f"<tr><td colspan='{len(columns) + 1}'>none</td></tr>"
    return (f"<table class='{css_class}'><thead><tr><th>{html.escape(index_label)}</th>"
            f"{head}</tr></thead><tbody>{body}</tbody></table>")
