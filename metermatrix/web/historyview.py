"""The residents' calendar periods on the web: choosing one, the year view, Green Button.

``/profile/{meterId}/consumption?period=day|week|month|year&date=YYYY-MM-DD`` opens the
calendar period holding the date (the consumption handlers call these functions);
``&format=greenbutton`` downloads the period's half-hourly readings as a Green Button
feed, for the seed's named periods as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from metermatrix.charts import NARROW, WIDE, Layout
from metermatrix.greenbutton import IntervalValue, usage_feed
from metermatrix.history import HISTORY_KINDS, history_period, parse_history_date
from metermatrix.periods import Period, PeriodError, last_due_boundary
from metermatrix.queries import MeterConsumption, daily
from metermatrix.slots import SLOT_MINUTES, interval_start
from metermatrix.storage import Storage
from metermatrix.yearview import month_rows, month_table, year_svg

_HALF_HOUR = timedelta(minutes=SLOT_MINUTES)
#: What ``format=`` may ask for on the consumption page's route.
OUTPUTS = ("html", "csv", "greenbutton")


def calendar_choice(kind: str, date_text: str | None, now: datetime, tz: tzinfo
                    ) -> Period | None:
    """The calendar period ``kind`` holding ``date_text`` (default today), None if invalid."""
    if kind not in HISTORY_KINDS:
        return None
    try:
        return history_period(kind, parse_history_date(date_text, now.astimezone(tz).date()),
                              tz)
    except PeriodError:
        return None


def interval_values(storage: Storage, meter_id: int, period: Period, now: datetime
                    ) -> list[IntervalValue]:
    """The meter's half-hourly readings inside ``period`` that are due by ``now``."""
    tz = period.start.tzinfo
    assert tz is not None, "periods are timezone-aware"
    boundary = last_due_boundary(now, tz)
    values = []
    for reading in storage.readings_between([meter_id], period.first_day, period.last_day):
        start = interval_start(reading.day, reading.slot, tz)
        if period.start <= start < period.end and start + _HALF_HOUR <= boundary:
            values.append(IntervalValue(start, reading.energy_wh))
    return values


def greenbutton_document(storage: Storage, meter_id: int, period: Period, now: datetime
                         ) -> bytes:
    """The Green Button feed of the meter's readings in ``period``."""
    tz = period.start.tzinfo
    assert tz is not None, "periods are timezone-aware"
    return usage_feed(interval_values(storage, meter_id, period, now),
                      usage_point_id=f"{meter_id:09d}", tz=tz, updated=now,
                      interval_s=SLOT_MINUTES * 60, title=f"Meter {meter_id:09d}")


def download_name(meter_id: int, period: Period, extension: str) -> str:
    """``metermatrix-999999999-week-2026-11-30.xml``: the file name of a download."""
    return f"metermatrix-{meter_id:09d}-{period.name}-{period.first_day.isoformat()}.{extension}"


@dataclass(frozen=True)
class YearView:
    """A year's charts (one per layout asked for) and table of 12 months beside the year
    before."""

    svgs: tuple[str, ...]
    table: list[tuple[str, float, str, float, float]]
    months: list[dict[str, object]]


def year_view(storage: Storage, result: MeterConsumption, first_day: date | None,
              now: datetime, layouts: tuple[Layout, ...] = (WIDE, NARROW)) -> YearView:
    """The year of ``result`` (daily rows) as 12 monthly bars with the year before, drawn
    at each of ``layouts``."""
    previous = daily(storage, [result.meter_id], result.previous, now)
    months = month_rows(result, previous, first_day)
    svgs = tuple(year_svg(months, result.period.first_day.year, f"{result.region} average",
                          layout) for layout in layouts)
    records: list[dict[str, object]] = [
        {"month": f"{start:%Y-%m}", "energy_kwh": _round(energy), "status": status,
         "previous_kwh": _round(before), "region_average_kwh": _round(region)}
        for start, energy, status, before, region in zip(
            months["start"].tolist(), months["energy_kwh"].astype(float).tolist(),
            months["status"].tolist(), months["previous_kwh"].astype(float).tolist(),
            months["region_average_kwh"].astype(float).tolist(), strict=True)]
    return YearView(svgs, month_table(months), records)


def _round(value: float) -> float | None:
    return None if value != value else round(value, 3)
