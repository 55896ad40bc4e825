"""DataFrame -> matplotlib Figure -> SVG: the residents' consumption chart.

The chart is drawn straight onto a ``Figure`` (on an Agg canvas, never pyplot, so the
server keeps no global figure state) through one data-to-figure transform, with the grid,
labels and legend drawn by hand: matplotlib's Axes and tick machinery cost about two
thirds of the rendering time, and a page has a time budget. For the same reason the SVG
path writes the labels as ``<text>`` elements itself instead of through matplotlib's text
layout (the markup matplotlib would write too). Missing intervals are hatched grey
columns with a legend entry, never zero; intervals still to come are left empty.
"""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Affine2D, Transform
from numpy.typing import NDArray

from metermatrix.periods import Period

INK = "#1d2a33"
ACCENT = "#0b7a75"
PARTIAL = "#7fbfba"
MISSING_FACE = "#eef1f3"
MISSING_EDGE = "#8d99a2"
PREVIOUS = "#6b7b86"
REGION = "#d9822b"
GRID = "#dde3e7"
FONT_PT = 10
#: Width of a label's character and the least space between two labels [pt] (at FONT_PT).
CHAR_PT, LABEL_GAP_PT = 6.2, 4.0


@dataclass(frozen=True)
class Layout:
    """A chart's size [inches] and its plot area: left, bottom, width, height [figure
    fraction]. The SVG scales to its container, so the size sets how large text is."""

    size_in: tuple[float, float]
    plot_box: tuple[float, float, float, float]
    #: Put before the SVG's element ids: both layouts are on one page, and an id must be
    #: unique there (a hatch pattern of the hidden chart does not paint the shown one).
    id_prefix: str = ""

    @property
    def plot_width_pt(self) -> float:
        """The plot area's width [pt]."""
        return self.size_in[0] * 72 * self.plot_box[2]


#: A page's chart on a desktop, and on a phone (narrower: text stays 12 px at 390 px).
WIDE = Layout((7.2, 3.4), (0.095, 0.14, 0.89, 0.7))
NARROW = Layout((4.0, 3.6), (0.15, 0.13, 0.82, 0.64), "narrow-")
#: How each status is drawn: (legend label, face colour, hatch).
STYLES: dict[str, tuple[str, str, str | None]] = {
    "ok": ("Reading", ACCENT, None),
    "complete": ("Day total", ACCENT, None),
    "incomplete": ("Day with half hours missing", ACCENT, "...."),
    "today": ("Today so far", PARTIAL, None),
    "missing": ("No reading", MISSING_FACE, "///"),
}
_ANCHOR = {"left": "start", "center": "middle", "right": "end"}
_BASELINE = {"baseline": "auto", "center": "central", "top": "hanging", "bottom": "text-after-edge"}
_ID_REFERENCE = re.compile(r'(\bid="|url\(#|href="#)')
_SIZE_ATTRIBUTES = re.compile(r'<svg([^>]*?) width="[^"]*" height="[^"]*"')


@dataclass(frozen=True)
class _Plot:
    """The figure, the data-to-figure transform and the data ranges of one chart."""

    figure: Figure
    to_figure: Transform
    count: int
    top: float
    labels: list[Label]
    layout: Layout

    def add(self, artist: Artist) -> None:
        """Add an artist drawn in data coordinates."""
        artist.set_transform(self.to_figure)
        self.figure.add_artist(artist)

    def text(self, x: float, y: float, text: str, ha: str = "left", va: str = "baseline",
             rotation: float = 0.0, kind: str = "") -> None:
        """A label at figure fraction (x, y), drawn later (as an artist or as SVG text)."""
        self.labels.append(Label(x, y, text, ha, va, rotation, kind))


@dataclass(frozen=True)
class Label:
    """A text label at figure fraction (x, y), aligned like matplotlib's ``ha``/``va``."""

    x: float
    y: float
    text: str
    ha: str = "left"
    va: str = "baseline"
    rotation: float = 0.0
    kind: str = ""  # "legend" for the legend's labels (their SVG class)


def _new_plot(count: int, top: float, layout: Layout = WIDE) -> _Plot:
    figure = Figure(figsize=layout.size_in)
    FigureCanvasAgg(figure)
    left, bottom, width, height = layout.plot_box
    x0, x1 = -0.6, max(count, 1) - 0.4
    to_box = (Affine2D().translate(-x0, 0).scale(width / (x1 - x0), height / top)
              .translate(left, bottom))
    return _Plot(figure, to_box + figure.transFigure, count, top, [], layout)


def label_step(labels: list[str], width_pt: float, steps: tuple[int, ...]) -> int:
    """The first of ``steps`` at which every ``step``-th label fits side by side in
    ``width_pt`` [pt]; the last step if none does."""
    label_pt = max((len(label) for label in labels), default=0) * CHAR_PT + LABEL_GAP_PT
    for step in steps:
        if math.ceil(len(labels) / step) * label_pt <= width_pt:
            return step
    return steps[-1]


def _top(rows: pd.DataFrame) -> float:
    columns = [name for name in ("energy_kwh", "previous_kwh", "region_average_kwh")
               if name in rows]
    values = rows[columns].to_numpy(dtype=float)
    peak = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    return peak * 1.12 if peak > 0 else 1.0


def _columns(x: NDArray[np.float64], heights: NDArray[np.float64]
             ) -> list[list[tuple[float, float]]]:
    return [[(i - 0.4, 0.0), (i - 0.4, h), (i + 0.4, h), (i + 0.4, 0.0)]
            for i, h in zip(x.tolist(), heights.tolist(), strict=True)]


def _draw_bars(plot: _Plot, rows: pd.DataFrame) -> list[tuple[str, Artist]]:
    """Bars by status, one collection per kind; returns the legend entries drawn."""
    x = np.arange(len(rows), dtype=float)
    energy = rows["energy_kwh"].to_numpy(dtype=float)
    status = rows["status"].to_numpy(dtype=str)
    legend: list[tuple[str, Artist]] = []
    for key, (label, face, hatch) in STYLES.items():
        chosen = status == key
        if not chosen.any():
            continue
        heights = np.full(int(chosen.sum()), plot.top) if key == "missing" else energy[chosen]
        edge = MISSING_EDGE if key == "missing" else "white" if hatch else face
        plot.add(PolyCollection(_columns(x[chosen], heights), facecolors=face,
                                edgecolors=edge, hatch=hatch, linewidths=0))
        legend.append((label, Rectangle((0, 0), 1, 1, facecolor=face, edgecolor=edge,
                                        hatch=hatch, linewidth=0.6 if hatch else 0)))
    return legend


def _draw_lines(plot: _Plot, rows: pd.DataFrame, previous_label: str,
                region_label: str) -> list[tuple[str, Artist]]:
    x = np.arange(len(rows), dtype=float)
    legend: list[tuple[str, Artist]] = []
    if previous_label and "previous_kwh" in rows:
        style = {"color": PREVIOUS, "linestyle": "--", "linewidth": 1.3}
        plot.add(Line2D(x, rows["previous_kwh"].to_numpy(dtype=float), drawstyle="steps-mid",
                        **style))  # type: ignore[arg-type]
        legend.append((previous_label, Line2D([0, 1], [0.5, 0.5], **style)))  # type: ignore[arg-type]
    if region_label and "region_average_kwh" in rows:
        style = {"color": REGION, "linestyle": ":", "linewidth": 2.0}
        plot.add(Line2D(x, rows["region_average_kwh"].to_numpy(dtype=float), marker="o",
                        markersize=2.5, **style))  # type: ignore[arg-type]
        legend.append((region_label, Line2D([0, 1], [0.5, 0.5], **style)))  # type: ignore[arg-type]
    return legend


def _draw_grid(plot: _Plot, rows: pd.DataFrame, period: Period) -> None:
    """Grid lines with kWh labels, a baseline, time labels below it and the unit."""
    left, bottom, width, height = plot.layout.plot_box
    levels = [float(v) for v in MaxNLocator(nbins=6, steps=[1, 2, 5, 10]).tick_values(0, plot.top)
              if 0 <= v <= plot.top]
    x0, x1 = -0.6, max(plot.count, 1) - 0.4
    plot.add(LineCollection([[(x0, v), (x1, v)] for v in levels[1:]], colors=GRID,
                            linewidths=0.6))
    plot.add(LineCollection([[(x0, 0.0), (x1, 0.0)]], colors=INK, linewidths=0.8))
    step = levels[1] - levels[0] if len(levels) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    for level in levels:
        plot.text(left - 0.008, bottom + height * level / plot.top, f"{level:.{decimals}f}",
                  ha="right", va="center")
    labels, every = _tick_labels(rows, period.resolution, plot.layout.plot_width_pt)
    for position, label in list(enumerate(labels))[::every]:
        plot.text(left + width * (position - x0) / (x1 - x0), bottom - 0.03, label,
                  ha="center", va="top")
    unit = "kWh per half hour" if period.resolution == "half-hour" else "kWh per day"
    plot.text(0.025, bottom + height / 2, unit, rotation=90, ha="center", va="center")


def _tick_labels(rows: pd.DataFrame, resolution: str, width_pt: float
                 ) -> tuple[list[str], int]:
    """The time labels below the bars, and every how many of them fit [pt] to show."""
    starts = pd.DatetimeIndex(rows["start"])
    if resolution == "half-hour":
        labels = [f"{start:%H:%M}" for start in starts]
        return labels, label_step(labels, width_pt, (1, 2, 4, 6, 8, 12, 24))
    if len(rows) <= 8:  # a week: "Mon 23", or only the dates where those do not fit
        labels = [f"{start:%a} {start.day}" for start in starts]
        if label_step(labels, width_pt, (1, 2)) == 1:
            return labels, 1
    labels = [f"{start.day}" for start in starts]
    return labels, label_step(labels, width_pt, (1, 2, 7))


def _draw_legend(plot: _Plot, entries: list[tuple[str, Artist]]) -> None:
    """One row of swatches and labels, centred above the plot (wrapping when long)."""
    width_pt, height_pt = (size * 72 for size in plot.layout.size_in)
    char_w, swatch_w, gap, space = (pt / width_pt for pt in (5.5, 16.6, 15.6, 4.15))
    top, row_h, swatch_h = (pt / height_pt for pt in (11.0, 18.4, 9.8))
    widths = [swatch_w + space + char_w * len(label) for label, _ in entries]
    rows: list[list[int]] = [[]]
    for index, entry_w in enumerate(widths):
        if rows[-1] and sum(widths[i] + gap for i in rows[-1]) + entry_w > 0.96:
            rows.append([])
        rows[-1].append(index)
    for line, members in enumerate(rows):
        x = 0.5 - (sum(widths[i] for i in members) + gap * (len(members) - 1)) / 2
        y = 1 - top - line * row_h
        for index in members:
            label, swatch = entries[index]
            swatch.set_transform(Affine2D().scale(swatch_w, swatch_h)
                                 .translate(x, y - swatch_h / 2) + plot.figure.transFigure)
            plot.figure.add_artist(swatch)
            plot.text(x + swatch_w + space, y, label, va="center", kind="legend")
            x += widths[index] + gap


def _chart(rows: pd.DataFrame, period: Period, previous_label: str, region_label: str,
           layout: Layout = WIDE) -> tuple[Figure, list[Label]]:
    plot = _new_plot(len(rows), _top(rows), layout)
    _draw_grid(plot, rows, period)
    legend = _draw_bars(plot, rows)
    legend += _draw_lines(plot, rows, previous_label, region_label)
    _draw_legend(plot, legend)
    return plot.figure, plot.labels


def consumption_figure(rows: pd.DataFrame, period: Period, previous_label: str = "",
                       region_label: str = "") -> Figure:
    """A bar chart of ``rows`` (see ``queries.MeterConsumption.rows``) for ``period``.

    Bars are ``energy_kwh`` [kWh] coloured by ``status``; ``previous_kwh`` is drawn as a
    dashed step line and ``region_average_kwh`` as a dotted line when labels are given.
    """
    figure, labels = _chart(rows, period, previous_label, region_label)
    for label in labels:
        figure.add_artist(Text(label.x, label.y, label.text, fontsize=FONT_PT, color=INK,
                               ha=label.ha, va=label.va, rotation=label.rotation,
                               transform=figure.transFigure))
    return figure


def figure_to_svg(figure: Figure, id_prefix: str = "") -> str:
    """The figure as an inline ``<svg>`` element that scales to its container (viewBox),
    its element ids (hatch patterns, clip paths) starting with ``id_prefix``."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "metermatrix"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, transparent=True)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    if id_prefix:
        text = _ID_REFERENCE.sub(lambda found: found[1] + id_prefix, text)
    return _SIZE_ATTRIBUTES.sub(
        r'<svg\1 width="100%" preserveAspectRatio="xMidYMid meet"', text, count=1)


def svg_labels(labels: list[Label], size_in: tuple[float, float] = WIDE.size_in) -> str:
    """The labels as SVG ``<text>`` elements in the user units of a figure of ``size_in``."""
    width, height = size_in[0] * 72, size_in[1] * 72  # matplotlib's SVG: 72 units per inch
    parts = [f'<g class="labels" fill="{INK}" font-size="{FONT_PT}" '
             'font-family="DejaVu Sans, sans-serif">']
    for label in labels:
        x, y = round(label.x * width, 2), round((1 - label.y) * height, 2)
        turn = f' transform="rotate({-label.rotation:g} {x} {y})"' if label.rotation else ""
        kind = f' class="{label.kind}"' if label.kind else ""
        parts.append(f'<text{kind} x="{x}" y="{y}" text-anchor="{_ANCHOR[label.ha]}" '
                     f'dominant-baseline="{_BASELINE[label.va]}"{turn}>'
                     f"{html.escape(label.text)}</text>")
    return "\n".join([*parts, "</g>"])


def consumption_svg(rows: pd.DataFrame, period: Period, previous_label: str = "",
                    region_label: str = "", layout: Layout = WIDE) -> str:
    """The chart as a responsive inline SVG string, drawn at ``layout``'s size.

    Shapes are rendered by matplotlib; the labels are written as SVG text directly, which
    is what matplotlib writes for them too (``svg.fonttype`` "none") at a fraction of the
    cost of its text layout.
    """
    figure, labels = _chart(rows, period, previous_label, region_label, layout)
    svg = figure_to_svg(figure, layout.id_prefix)
    end = svg.rindex("</svg>")
    return svg[:end] + svg_labels(labels, layout.size_in) + "\n" + svg[end:]
