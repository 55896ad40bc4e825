"""A resident's consumption for a period: the page (graph, numbers, table), CSV and JSON."""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime
from typing import Any, NamedTuple

import pandas as pd
import tornado.web

from metermatrix.averages import DEFINITION
from metermatrix.charts import consumption_svg
from metermatrix.periods import RESIDENT_PERIODS, Period, PeriodError, resolve_period
from metermatrix.queries import MeterConsumption, meter_consumption
from metermatrix.slots import SLOT_LABELS, SLOT_MINUTES
from metermatrix.web.base import BaseHandler, JSONHandler
from metermatrix.web.figures import add_document_figures, page_figures
from metermatrix.web.residentpage import ResidentPage, ResidentState, parse_meter_text

#: How the period before each resident period is called on the page and in the chart.
PREVIOUS_NAMES = {
    "prev-hr": "The hour before",
    "current-day": "Yesterday",
    "current-week": "Last week",
    "current-month": "Last month",
    "prev-month": "The month before",
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


def consumption_records(result: MeterConsumption) -> list[dict[str, Any]]:
    """The period's rows as plain records (CSV and JSON); energy in kWh, None when missing."""
    half_hourly = result.period.resolution == "half-hour"
    records: list[dict[str, Any]] = []
    for row in plain_rows(result.rows):
        record: dict[str, Any] = {"date": row.day.isoformat(), "start": row.start.isoformat()}
        if half_hourly:
            record["slot"] = SLOT_LABELS[row.slot]
        record["energy_kwh"] = _kwh(row.energy_kwh)
        if not half_hourly:
            record["readings"] = row.readings
        record["status"] = row.status
        record["previous_kwh"] = _kwh(row.previous_kwh)
        record["region_average_kwh"] = _kwh(row.region_average_kwh)
        records.append(record)
    return records


def consumption_document(result: MeterConsumption, tariff_sgd_per_kwh: float) -> dict[str, Any]:
    """The JSON API's answer for one meter and period."""
    period, previous = result.period, result.previous
    return {
        "meter_id": f"{result.meter_id:09d}",
        "region": result.region,
        "period": {"name": period.name, "title": period.title, "resolution": period.resolution,
                   "start": period.start.isoformat(), "end": period.end.isoformat()},
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
        "rows": consumption_records(result),
    }


def consumption_csv(result: MeterConsumption) -> str:
    """The period's rows as CSV with a header; an empty ``energy_kwh`` is a missing reading."""
    records = consumption_records(result)
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


class _ConsumptionSource(BaseHandler):
    """Finding the period and loading a meter's consumption, for the page and the API."""

    state: ResidentState

    def load(self, meter_id: int, period: Period) -> MeterConsumption:
        """The meter's consumption in ``period`` with the previous period and its region."""
        meter = self.service.storage.get_meter(meter_id)
        return meter_consumption(self.service.storage, meter_id,
                                 meter.region if meter else None, period,
                                 self.service.clock(), self.state.averages)

    def chosen_period(self) -> Period | None:
        """The ``period`` argument as a resident period, or None when it is not one."""
        name = self.get_argument("period", DEFAULT_PERIOD)
        if name not in RESIDENT_PERIODS:
            return None
        try:
            return resolve_period(name, self.service.clock(), self.service.settings.tz)
        except PeriodError:
            return None


class ConsumptionHandler(_ConsumptionSource, ResidentPage):
    """/profile/{meterId}/consumption?period=...[&format=csv]: graph, numbers and table."""

    @tornado.web.authenticated
    def get(self, meter_text: str) -> None:
        meter_id = self.own_meter(meter_text)
        period = self.chosen_period()
        output = self.get_argument("format", "html")
        if period is None or output not in ("html", "csv"):
            self.set_status(400)
            self.render("period_error.html", meter_id=meter_id,
                        asked=self.get_argument("period", DEFAULT_PERIOD), output=output)
            return
        result = self.load(meter_id, period)
        if output == "csv":
            self.send_csv(result)
            return
        previous_name = PREVIOUS_NAMES[period.name]
        svg = consumption_svg(result.rows, period, previous_name, f"{result.region} average")
        self.render("consumption.html", result=result, svg=svg, table=table_rows(result),
                    previous_name=previous_name, settings=self.service.settings,
                    meter_id=meter_id, average_definition=DEFINITION,
                    **page_figures(result, self.service.clock(), self.service.settings,
                                   previous_name, self.service.storage))

    def send_csv(self, result: MeterConsumption) -> None:
        """The period's rows as a CSV download."""
        name = f"metermatrix-{result.meter_id:09d}-{result.period.name}-" \
               f"{result.period.first_day.isoformat()}.csv"
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(consumption_csv(result))


class ConsumptionAPIHandler(_ConsumptionSource, JSONHandler):
    """GET /api/v1/meters/{meterId}/consumption?period=...: the same numbers as JSON."""

    def initialize(self, state: ResidentState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    def get(self, meter_text: str) -> None:
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
            return self.write_json({"error": f"unknown period {name!r}",
                                    "valid_periods": list(RESIDENT_PERIODS)}, 400)
        result = self.load(meter_id, period)
        document = consumption_document(result, self.service.settings.tariff_sgd_per_kwh)
        self.write_json(add_document_figures(document, result, self.service.clock(),
                                             self.service.settings, self.service.storage))
