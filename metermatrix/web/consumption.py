"""A resident's consumption for a period: the page (graph, numbers, table), CSV and JSON."""

from __future__ import annotations

import csv
import functools
import io
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import tornado.template
import tornado.web

from metermatrix import readers
from metermatrix.averages import DEFINITION
from metermatrix.charts import NARROW, WIDE, consumption_svg
from metermatrix.emissions import emissions_kg
from metermatrix.history import (
    HISTORY_KINDS,
    HISTORY_PREVIOUS_NAMES,
    HistoryPeriod,
    history_nav,
    unavailable_reason,
)
from metermatrix.periods import RESIDENT_PERIODS, Period, PeriodError, resolve_period
from metermatrix.queries import MeterConsumption
from metermatrix.settings import Settings
from metermatrix.slots import SLOT_LABELS, SLOT_MINUTES
from metermatrix.storage import UNASSIGNED, Storage
from metermatrix.today import OpenDaySums
from metermatrix.web.base import BaseHandler, JSONHandler
from metermatrix.web.figures import add_document_figures, page_figures
from metermatrix.web.historyview import (
    OUTPUTS,
    calendar_choice,
    download_name,
    greenbutton_document,
    year_view,
)
from metermatrix.web.residentpage import (
    FORMATTERS,
    ResidentPage,
    ResidentState,
    parse_meter_text,
)

#: How the period before each resident period is called on the page and in the chart.
PREVIOUS_NAMES = {
    "prev-hr": "The hour before",
    "current-day": "Yesterday",
    "current-week": "Last week",
    "current-month": "Last month",
    "prev-month": "The month before",
    **HISTORY_PREVIOUS_NAMES,
}
DEFAULT_PERIOD = "current-day"


def _kwh(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


class Row(NamedTuple):
    """One row of ``MeterConsumption.rows`` as plain Python values."""

    start: datetime
    day: date
    slot: int  # -1 at daily resolution
    energy_kwh: float
    readings: int  # -1 at half-hourly resolution
    status: str
    previous_kwh: float
    region_average_kwh: float


def plain_rows(frame: pd.DataFrame) -> list[Row]:
    """The frame's rows as ``Row`` tuples."""
    count = len(frame)
    starts = [stamp.to_pydatetime() for stamp in pd.DatetimeIndex(frame["start"])]

    def column(name: str, default: object) -> list[Any]:
        return frame[name].tolist() if name in frame else [default] * count

    return [Row(*values) for values in zip(
        starts, column("day", 0), column("slot", -1), column("energy_kwh", math.nan),
        column("readings", -1), column("status", ""), column("previous_kwh", math.nan),
        column("region_average_kwh", math.nan), strict=True)]


def consumption_records(result: MeterConsumption, settings: Settings) -> list[dict[str, Any]]:
    """The period's rows as plain records (CSV and JSON); energy in kWh, each row's cost
    [S$] at the tariff and CO2 [kg] at the grid emission factor; None when missing."""
    tariff, factor = settings.tariff_sgd_per_kwh, settings.grid_emission_factor_kg_per_kwh
    half_hourly = result.period.resolution == "half-hour"
    records: list[dict[str, Any]] = []
    for row in plain_rows(result.rows):
        record: dict[str, Any] = {"date": row.day.isoformat(), "start": row.start.isoformat()}
        if half_hourly:
            record["slot"] = SLOT_LABELS[row.slot]
        record["energy_kwh"] = _kwh(row.energy_kwh)
        record["estimated_cost_sgd"] = _kwh(row.energy_kwh * tariff, 4)
        record["estimated_co2_kg"] = _kwh(emissions_kg(row.energy_kwh, factor), 4)
        if not half_hourly:
            record["readings"] = row.readings
        record["status"] = row.status
        record["previous_kwh"] = _kwh(row.previous_kwh)
        record["region_average_kwh"] = _kwh(row.region_average_kwh)
        records.append(record)
    return records


def period_block(period: Period) -> dict[str, str]:
    """The JSON description of a period: name, title, resolution, start and end."""
    return {"name": period.name, "title": period.title, "resolution": period.resolution,
            "start": period.start.isoformat(), "end": period.end.isoformat()}


def consumption_document(result: MeterConsumption, settings: Settings) -> dict[str, Any]:
    """The JSON API's answer for one meter and period."""
    period, previous = result.period, result.previous
    tariff_sgd_per_kwh = settings.tariff_sgd_per_kwh
    return {
        "meter_id": f"{result.meter_id:09d}",
        "region": result.region,
        "period": period_block(period),
        "unit": "kWh",
        "total_kwh": _kwh(result.total_kwh),
        "estimated_cost_sgd": _kwh(result.total_kwh * tariff_sgd_per_kwh, 2),
        "tariff_sgd_per_kwh": tariff_sgd_per_kwh,
        "intervals_due": result.due,
        "intervals_missing": result.missing,
        "previous": {"start": previous.start.isoformat(), "end": previous.end.isoformat(),
                     "total_kwh": _kwh(result.previous_total_kwh)},
        "region_average": {"region": result.region,
                           "total_kwh": _kwh(result.region_total_kwh)},
        "rows": consumption_records(result, settings),
    }


def consumption_csv(result: MeterConsumption, settings: Settings) -> str:
    """The period's rows as CSV with a header; an empty ``energy_kwh`` is a missing reading."""
    records = consumption_records(result, settings)
    buffer = io.StringIO()
    fields = ["meter_id", *(records[0] if records else ["date", "energy_kwh", "status"])]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow({"meter_id": f"{result.meter_id:09d}", **record})
    return buffer.getvalue()


def table_rows(result: MeterConsumption) -> list[tuple[str, float, str, float, float]]:
    """(label, kWh, status, previous kWh, region kWh) of each due interval, for the page."""
    half_hourly = result.period.resolution == "half-hour"
    table = []
    for row in plain_rows(result.rows):
        if row.status == "pending":
            continue
        start = row.start
        if half_hourly:
            minutes = start.hour * 60 + start.minute + SLOT_MINUTES
            label = f"{start:%H:%M}\u2013{minutes // 60 % 24:02d}:{minutes % 60:02d}"
        else:
            label = f"{start:%a %d %b}"
        table.append((label, row.energy_kwh, row.status, row.previous_kwh,
                      row.region_average_kwh))
    return table


#: Where a reader finds the page's body template (and what it includes).
TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def _body_template() -> tornado.template.Template:
    """The page body's template, loaded once per reader."""
    return tornado.template.Loader(str(TEMPLATES)).load("consumption_body.html")


def page_body(storage: Storage, meter_id: int, region: str | None, period: Period,
              now: datetime, today: OpenDaySums | None, first_day: date | None,
              settings: Settings, refresh_script: str) -> str:
    """The consumption page's body as HTML: figures, charts (desktop, phone) and table.

    A reader job: everything from the database read to the HTML runs beside the server,
    which gets back one string (no frames to unpickle, no template to run).
    """
    result = readers.consumption(storage, meter_id, region, period, now, today)
    previous_name = PREVIOUS_NAMES[period.name]
    if result.period.name == "year":
        view = year_view(storage, result, first_day, now)
        svgs, table = view.svgs, view.table
    else:
        svgs = tuple(consumption_svg(result.rows, result.period, previous_name,
                                     f"{result.region} average", layout)
                     for layout in (WIDE, NARROW))
        table = table_rows(result)
    html: bytes = _body_template().generate(
        **FORMATTERS, result=result, svgs=svgs, table=table, previous_name=previous_name,
        settings=settings, meter_id=meter_id, average_definition=DEFINITION,
        late_days=settings.late_days, refresh_script=refresh_script,
        nav=history_nav(period, now, settings.tz, first_day),
        **page_figures(result, now, settings, previous_name, storage))
    return html.decode()


class _ConsumptionSource(BaseHandler):
    """Finding the period and loading a meter's consumption, for the page and the API."""

    state: ResidentState

    async def load(self, meter_id: int, period: Period) -> MeterConsumption:
        """The meter's consumption in ``period`` with the previous period and its region.

        Computed by a reader (off the event loop).
        """
        region, today = self.region_today(meter_id)
        return await self.service.readers.run(readers.consumption, meter_id, region,
                                              period, self.service.clock(), today)

    def region_today(self, meter_id: int) -> tuple[str | None, OpenDaySums | None]:
        """The meter's region and its open day's sums, copied from today's store."""
        meter = self.service.storage.get_meter(meter_id)
        region = meter.region if meter else None
        collector = self.service.collector
        today = (collector.store.open_day_sums([region or UNASSIGNED])
                 if collector is not None else None)
        return region, today

    def chosen_period(self) -> Period | None:
        """The ``period`` argument (with ``date`` for a calendar period) as a resident
        period, or None when it is not one."""
        name = self.get_argument("period", DEFAULT_PERIOD)
        if name in HISTORY_KINDS:
            return calendar_choice(name, self.get_argument("date", None),
                                   self.service.clock(), self.service.settings.tz)
        if name not in RESIDENT_PERIODS:
            return None
        try:
            return resolve_period(name, self.service.clock(), self.service.settings.tz)
        except PeriodError:
            return None

    def unavailable(self, meter_id: int, period: Period) -> tuple[date | None, str | None]:
        """The meter's first reading day, and why a calendar period has nothing to show."""
        first_day = self.service.storage.first_reading_day(meter_id)
        if not isinstance(period, HistoryPeriod):
            return first_day, None
        return first_day, unavailable_reason(period, self.service.clock(), first_day)


class ConsumptionHandler(_ConsumptionSource, ResidentPage):
    """/profile/{meterId}/consumption?period=...[&format=csv]: graph, numbers and table."""

    @tornado.web.authenticated
    async def get(self, meter_text: str) -> None:
        meter_id = self.own_meter(meter_text)
        period = self.chosen_period()
        output = self.get_argument("format", "html")
        if period is None or output not in OUTPUTS:
            self.set_status(400)
            self.render("period_error.html", meter_id=meter_id,
                        asked=self.get_argument("period", DEFAULT_PERIOD), output=output)
            return
        first_day, reason = self.unavailable(meter_id, period)
        if reason is not None:
            return self.send_unavailable(meter_id, period, output, reason, first_day)
        if output == "greenbutton":
            return await self.send_greenbutton(meter_id, period)
        if output == "csv":
            return self.send_csv(await self.load(meter_id, period))
        await self.send_page(meter_id, period, first_day)

    async def send_page(self, meter_id: int, period: Period, first_day: date | None) -> None:
        """The page: cards, the chart (12 months for a year) and the table, its body
        written by a reader (``page_body``)."""
        region, today = self.region_today(meter_id)
        body = await self.service.readers.run(
            page_body, meter_id, region, period, self.service.clock(), today, first_day,
            self.service.settings, self.static_url("refresh.js"))
        self.render("consumption.html", period=period, meter_id=meter_id, body=body)

    def send_unavailable(self, meter_id: int, period: Period, output: str, reason: str,
                         first_day: date | None) -> None:
        """A calendar period in the future or before the first reading: said, not drawn."""
        nav = history_nav(period, self.service.clock(), self.service.settings.tz, first_day)
        if output != "html":
            self.set_status(404)
        self.render("history_empty.html", meter_id=meter_id, period=period, reason=reason,
                    nav=nav)

    async def send_greenbutton(self, meter_id: int, period: Period) -> None:
        """The period's half-hourly readings as a Green Button (ESPI) download (read and
        written by a reader, off the event loop)."""
        document = await self.service.readers.run(greenbutton_document, meter_id, period,
                                                  self.service.clock())
        name = download_name(meter_id, period, "xml")
        self.set_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(document)

    def send_csv(self, result: MeterConsumption) -> None:
        """The period's rows as a CSV download."""
        name = download_name(result.meter_id, result.period, "csv")
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(consumption_csv(result, self.service.settings))


class ConsumptionAPIHandler(_ConsumptionSource, JSONHandler):
    """GET /api/v1/meters/{meterId}/consumption?period=...: the same numbers as JSON."""

    def initialize(self, state: ResidentState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    async def get(self, meter_text: str) -> None:
        meter_id = parse_meter_text(meter_text)
        if self.resident_meter is None:
            return self.write_json({"error": "log in at /profile first"}, 401)
        if meter_id is None:
            return self.write_json({"error": "a meter ID has 9 digits"}, 404)
        if meter_id != self.resident_meter:
            return self.write_json({"error": "this is not your meter"}, 403)
        period = self.chosen_period()
        if period is None:
            name = self.get_argument("period", DEFAULT_PERIOD)
            return self.write_json({"error": f"unknown period {name!r} or date",
                                    "valid_periods": list(RESIDENT_PERIODS),
                                    "calendar_periods": list(HISTORY_KINDS),
                                    "date_format": "YYYY-MM-DD"}, 400)
        await self.answer(meter_id, period)

    async def answer(self, meter_id: int, period: Period) -> None:
        """The period's document, or 404 with the reason a calendar period has none."""
        first_day, reason = self.unavailable(meter_id, period)
        if reason is not None:
            return self.write_json({"error": reason, "period": period_block(period),
                                    "first_reading_date": first_day and first_day.isoformat()},
                                   404)
        result = await self.load(meter_id, period)
        document = consumption_document(result, self.service.settings)
        if period.name == "year":
            view = await self.service.readers.run(year_view, result, first_day,
                                                  self.service.clock(), ())
            document["months"] = view.months
        self.write_json(add_document_figures(document, result, self.service.clock(),
                                             self.service.settings, self.service.storage))
