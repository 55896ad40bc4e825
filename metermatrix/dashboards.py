"""ipywidgets builders for the notebooks: the management dashboard and the analysts' explorer.

A notebook stays thin: it makes a ``DataSource`` (opens the data folder, reads the meters,
warms matplotlib: in a preheated Voila kernel this happens before anyone asks), waits for
the page request with ``voila.utils.wait_for_request()``, then builds a dashboard from the
request's URL parameters (``request_query()``) and shows its ``widget``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import ipywidgets as widgets
import pandas as pd
from matplotlib.figure import Figure

from metermatrix import analysis, regions
from metermatrix import regioncharts as charts
from metermatrix.clock import environment_offset_s
from metermatrix.fleet import REGIONS
from metermatrix.periodpicker import PeriodPicker, describe
from metermatrix.periods import Period, PeriodError
from metermatrix.regioncharts import figure_svg
from metermatrix.regionmap import region_map_figure
from metermatrix.slots import local_day
from metermatrix.storage import Storage, open_storage
from metermatrix.voila import ENV_DATA_DIR, ENV_DATABASE, ENV_TIMEZONE, KERNEL_WARM_MARKER

ALL_REGIONS = "all"
#: After the database changed, today's totals younger than this are still reused [s].
SNAPSHOT_MAX_AGE_S = 60.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current instant by the server's clock (shifted only when a test asks for it)."""
    return datetime.now(UTC) + timedelta(seconds=environment_offset_s())


def after_this_cell(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the running notebook cell has finished; at once outside a kernel.

    A dashboard shows its widgets first and draws them right after: Voila sends the page
    and the browser loads its scripts while the kernel is still drawing.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        callback()
        return
    loop.call_soon(callback)


def request_query(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The page request's URL parameters (last value wins); empty outside Voila.

    Call it after ``voila.utils.wait_for_request()``, which puts ``QUERY_STRING`` in the
    environment of a preheated kernel.
    """
    env = os.environ if environ is None else environ
    return dict(parse_qsl(env.get("QUERY_STRING", ""), keep_blank_values=False))


class DataSource:
    """The data folder opened read-only, with the meters cached between refreshes."""

    def __init__(self, data_dir: Path, timezone: str, database: str = "") -> None:
        self.data_dir = data_dir
        self.tz = ZoneInfo(timezone)
        if not database and not (data_dir / "metermatrix.sqlite3").is_file():
            raise FileNotFoundError(f"no MeterMatrix database in {data_dir.resolve()}; set "
                                    f"{ENV_DATA_DIR} to the server's data folder")
        self.storage: Storage = open_storage(data_dir, readonly=True, database=database)
        self.directory = regions.MeterDirectory()
        self._snapshot: tuple[float, int, regions.Snapshot] | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DataSource:
        """The folder in METERMATRIX_DATA_DIR (default: ``data`` in the repository, where
        ``make run`` keeps it), the zone in METERMATRIX_TIMEZONE (default UTC) and the
        database in METERMATRIX_DATABASE (default: SQLite in the folder)."""
        env = os.environ if environ is None else environ
        default = Path(__file__).resolve().parents[1] / "data"
        return cls(Path(env.get(ENV_DATA_DIR, str(default))), env.get(ENV_TIMEZONE, "UTC"),
                   env.get(ENV_DATABASE, ""))

    def warm_up(self) -> DataSource:
        """Read the meters and today's totals and draw one small figure, so the first real
        redraw is quick (the totals are reused while nothing has been written since).

        In a preheated Voila kernel, then tell the server (on the kernel's own stderr, which
        the Voila child relays) that this kernel is ready for a page request.
        """
        self.snapshot(utc_now())
        figure = Figure(figsize=(1, 1))
        figure.add_subplot().set_title("warm-up 0123456789")
        figure_svg(figure)
        if os.environ.get("VOILA_PREHEAT") == "True" and sys.__stderr__ is not None:
            print(KERNEL_WARM_MARKER, file=sys.__stderr__, flush=True)
        return self

    def snapshot(self, now: datetime, fresh: bool = False) -> regions.Snapshot:
        """Meters and today's per-meter totals as of ``now``.

        Read again when ``fresh``, on a new day, or when the database has changed and the
        last reading is older than SNAPSHOT_MAX_AGE_S; otherwise the last one is reused.
        """
        version = self.storage.data_version()
        if not fresh and self._snapshot is not None:
            taken, read_version, snapshot = self._snapshot
            if snapshot.today == local_day(now, self.tz):
                if read_version == version:
                    return dataclasses.replace(snapshot, now=now)
                if time.monotonic() - taken < SNAPSHOT_MAX_AGE_S:
                    return snapshot
        snapshot = regions.take_snapshot(self.storage, now, self.tz, self.directory)
        self._snapshot = (time.monotonic(), version, snapshot)
        return snapshot


def chart(css_class: str) -> widgets.Image:
    """An empty SVG image widget with a CSS class (tests and styles find it by the class)."""
    image = widgets.Image(format="svg+xml")
    image.add_class(css_class)
    return image


def chart_box(image: widgets.Image) -> widgets.Box:
    """The page's frame of a chart: as wide as the page; on a phone the template's style
    draws the chart wider than the screen and this box scrolls it sideways."""
    box = widgets.Box([image], layout=widgets.Layout(width="100%"))
    box.add_class("mm-chart-box")
    return box


def page_box(children: list[widgets.Widget]) -> widgets.VBox:
    """A dashboard's outer box: the width of the page, never wider."""
    box = widgets.VBox(children, layout=widgets.Layout(width="100%", max_width="100%"))
    box.add_class("mm-dashboard")
    return box


def controls_row(children: list[widgets.Widget]) -> widgets.HBox:
    """A row of controls that wraps onto more lines when the page is narrow."""
    return widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap", width="100%"))


def table(css_class: str) -> widgets.HTML:
    """An empty HTML widget for a table (scrolled sideways when wider than the page)."""
    html = widgets.HTML(layout=widgets.Layout(max_width="100%"))
    html.add_class(css_class)
    html.add_class("mm-scroll")
    return html


def show(image: widgets.Image, figure: Figure) -> None:
    """Render ``figure`` into ``image`` (as SVG)."""
    image.value = figure_svg(figure)


def status_html(text: str, error: bool = False) -> str:
    """The status line under the controls."""
    colour = "#b3261e" if error else "#4a5963"
    return f"<div class='mm-status' style='color:{colour}'>{text}</div>"


class Redrawing:
    """Shared redraw bookkeeping: count, timing and error reporting in a status line."""

    def __init__(self) -> None:
        self.status = widgets.HTML(status_html("Loading..."))
        self.redraws = 0
        self.last_redraw_s = 0.0

    def run(self, draw: Callable[[], str]) -> None:
        """Run ``draw`` (which returns the status text), timing it; errors go to the status."""
        started = time.perf_counter()
        try:
            text = draw()
        except PeriodError as error:
            self.status.value = status_html(str(error), error=True)
            return
        self.last_redraw_s = time.perf_counter() - started
        self.redraws += 1
        self.status.value = status_html(f"{text} &middot; drawn in {self.last_redraw_s:.2f} s")


def region_choice(query: Mapping[str, str]) -> widgets.Dropdown:
    """The region filter: all regions or one."""
    options = [("All regions", ALL_REGIONS)] + [(region, region) for region in REGIONS]
    chosen = query.get("region", ALL_REGIONS)
    valid = {value for _, value in options}
    return widgets.Dropdown(options=options, value=chosen if chosen in valid else ALL_REGIONS,
                            description="Region")


def heading(text: str) -> widgets.HTML:
    """A section heading."""
    return widgets.HTML(f"<h3 style='margin:1em 0 .3em'>{text}</h3>")


def analysis_explorer(source: DataSource, query: Mapping[str, str],
                      meter_ids: list[int] | None = None,
                      clock: Clock = utc_now) -> ConsumptionExplorer:
    """The analysts' explorer for ``meter_ids`` (or ``?meters=`` or the first two meters)."""
    if meter_ids is None:
        meter_ids = parse_meter_ids(query.get("meters", ""))
    if not meter_ids:
        meter_ids = [int(m) for m in source.directory.frame(source.storage).index[:2]]
    return ConsumptionExplorer(source, meter_ids, query, clock)


def parse_meter_ids(text: str) -> list[int]:
    """Meter ids from "999999999, 555-555-555" (separators and dashes ignored)."""
    found = []
    for part in text.replace(";", ",").replace(" ", ",").split(","):
        digits = part.replace("-", "").strip()
        if digits.isdigit():
            found.append(int(digits))
    return list(dict.fromkeys(found))


class ConsumptionExplorer:
    """Chosen meters over a period: heat map, load profile, daily totals, region comparison."""

    MAX_METERS = 10

    def __init__(self, source: DataSource, meter_ids: list[int], query: Mapping[str, str],
                 clock: Clock = utc_now) -> None:
        self.source, self.clock = source, clock
        today = local_day(clock(), source.tz)
        self.meters = widgets.Text(value=", ".join(str(m) for m in meter_ids),
                                   description="Meters", continuous_update=False)
        self.picker = PeriodPicker(source.tz, today, query, default="current-month")
        self.redrawing = Redrawing()
        self.charts = {name: chart(f"mm-{name}") for name in
                       ("heatmap", "profile", "daily", "comparison")}
        self.frames: analysis.MeterFrames | None = None
        self.meters.observe(lambda _: self.redraw(), names="value")
        self.picker.observe(lambda _: self.redraw())
        self.widget = page_box([
            controls_row([self.meters, *self.picker.widgets]), self.redrawing.status,
            *(chart_box(image) for image in self.charts.values())])
        after_this_cell(self.redraw)

    def chosen_meters(self) -> tuple[list[int], list[int]]:
        """(known meter ids, unknown ids) from the text box, at most MAX_METERS."""
        ids = parse_meter_ids(str(self.meters.value))[: self.MAX_METERS]
        known = [m for m in ids if self.source.storage.get_meter(m) is not None]
        return known, [m for m in ids if m not in known]

    def redraw(self) -> None:
        """Load the frames for the current choice and draw every chart."""
        self.redrawing.run(self._draw)

    def _draw(self) -> str:
        now = self.clock()
        period = self.picker.period(now)
        known, unknown = self.chosen_meters()
        frames = analysis.load_meter_frames(self.source.storage, known, period, now)
        self.frames = frames
        show(self.charts["heatmap"], analysis.heatmap_figure(frames))
        show(self.charts["profile"], analysis.profile_figure(frames))
        show(self.charts["daily"], analysis.daily_figure(frames))
        show(self.charts["comparison"], analysis.comparison_figure(frames))
        warning = f" &middot; unknown meters: {', '.join(map(str, unknown))}" if unknown else ""
        return f"{describe(period)}, {len(known)} meters{warning}"


#: Columns of the dashboard's tables: column -> (heading, kind).
CONSUMPTION_COLUMNS = {"energy_kwh": ("Total [kWh]", "kwh"), "meters": ("Meters", "count"),
                       "average_kwh": ("Average per meter [kWh]", "kwh")}
COMPLETENESS_COLUMNS = {
    "reporting": ("Meters heard today", "count"), "readings": ("Readings today", "count"),
    "expected": ("Due today", "count"), "completeness": ("Today", "percent"),
    "period_readings": ("Readings in period", "count"),
    "period_expected": ("Due in period", "count"), "period_completeness": ("Period", "percent")}
METER_COLUMNS = {"name": ("Name", "text"), "region": ("Region", "text")}
TOP_COLUMNS = {**METER_COLUMNS, "energy_kwh": ("Energy [kWh]", "kwh")}
#: Silent meters listed at most (the count is always given).
SILENT_LISTED = 50


class ManagementDashboard:
    """Region-wise consumption for a period, the map, and today's operations."""

    def __init__(self, source: DataSource, query: Mapping[str, str] | None = None,
                 clock: Clock = utc_now) -> None:
        query = query or {}
        self.source, self.clock = source, clock
        self.picker = PeriodPicker(source.tz, local_day(clock(), source.tz), query,
                                   default="current-day")
        self.region = region_choice(query)
        self.refresh = widgets.Button(description="Refresh data", tooltip="Read the data again")
        self.redrawing = Redrawing()
        self.charts = {name: chart(f"mm-{name}") for name in ("region-bars", "daily-lines",
                                                               "region-map")}
        self.tables = {name: table(f"mm-{name}") for name in ("consumption", "completeness",
                                                               "silent", "top")}
        self.picker.observe(lambda _: self.redraw())
        self.region.observe(lambda _: self.redraw(), names="value")
        self.refresh.on_click(lambda _: self.redraw(fresh=True))
        self.widget = self._layout()
        after_this_cell(self.redraw)

    def _layout(self) -> widgets.VBox:
        controls = controls_row([*self.picker.widgets, self.region, self.refresh])
        charts = {name: chart_box(image) for name, image in self.charts.items()}
        return page_box([
            controls, self.redrawing.status,
            heading("Region-wise consumption"), charts["region-bars"],
            self.tables["consumption"], charts["daily-lines"], charts["region-map"],
            heading("Operations: data completeness"), self.tables["completeness"],
            heading("Meters silent today"), self.tables["silent"],
            heading("Top consumers"), self.tables["top"],
        ])

    def chosen_regions(self) -> list[str] | None:
        """The region filter's choice, None for all regions."""
        value = str(self.region.value)
        return None if value == ALL_REGIONS else [value]

    def redraw(self, fresh: bool = False) -> None:
        """Recompute and redraw everything for the current choices."""
        self.redrawing.run(lambda: self._draw(fresh))

    def _draw(self, fresh: bool) -> str:
        now = self.clock()
        period = self.picker.period(now)
        storage, snapshot = self.source.storage, self.source.snapshot(now, fresh)
        chosen = self.chosen_regions()
        frames = regions.daily_frames(storage, period, snapshot)
        summary = regions.region_summary(storage, period, snapshot, frames)
        daily = frames[0]
        shown = summary if chosen is None else summary.loc[chosen]
        title = describe(period)
        show(self.charts["region-bars"], charts.region_bar_figure(shown, title))
        show(self.charts["daily-lines"], charts.region_daily_figure(
            daily if chosen is None else daily[chosen], f"Daily totals per region, {title}",
            partial_day=snapshot.today))
        highlight = chosen[0] if chosen else None
        show(self.charts["region-map"], region_map_figure(
            {str(region): float(kwh) for region, kwh in summary["energy_kwh"].items()},
            f"Energy per region, {title}", highlight=highlight))
        self.tables["consumption"].value = charts.html_table(
            shown, CONSUMPTION_COLUMNS, "Region", "mm-table")
        self._draw_operations(storage, period, snapshot, summary, chosen)
        local = snapshot.now.astimezone(self.source.tz)
        return f"{title} &middot; data as of {local:%Y-%m-%d %H:%M:%S}"

    def _draw_operations(self, storage: Storage, period: Period, snapshot: regions.Snapshot,
                         summary: pd.DataFrame, chosen: list[str] | None) -> None:
        today = regions.today_completeness(snapshot)
        today["period_readings"] = summary["readings"]
        today["period_expected"] = summary["expected"]
        today["period_completeness"] = summary["completeness"]
        self.tables["completeness"].value = charts.html_table(
            today if chosen is None else today.loc[chosen], COMPLETENESS_COLUMNS, "Region",
            "mm-table")
        silent = regions.silent_meters(snapshot, chosen)
        more = len(silent) - SILENT_LISTED
        note = f"<p>{len(silent):,} meters sent nothing today" + (
            f"; the first {SILENT_LISTED} by id:" if more > 0 else ":") + "</p>"
        self.tables["silent"].value = note + charts.html_table(
            silent.head(SILENT_LISTED), METER_COLUMNS, "Meter", "mm-table")
        top = regions.top_consumers(storage, period, snapshot, 10, chosen)
        self.tables["top"].value = charts.html_table(top, TOP_COLUMNS, "Meter", "mm-table")
