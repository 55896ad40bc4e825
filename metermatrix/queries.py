"""Periods -> pandas DataFrames of consumption, shared by the residents' pages and notebooks.

Every frame has one row per meter and interval of the period, in time order; energy is in
kilowatt-hours [kWh] as float, and an interval without a reading is NaN, never 0. A
``status`` column says why a value is what it is:

- half-hourly rows: ``"ok"``, ``"missing"`` (the packet was due and never arrived) or
  ``"pending"`` (not yet due);
- daily rows: ``"complete"`` (48 readings), ``"incomplete"`` (fewer), ``"missing"`` (none),
  ``"today"`` (the open day, so far) or ``"pending"`` (a day still to come).

Closed days come from the daily totals; today's partial day and any day not yet closed are
summed from the half-hourly readings, so today's figures are always up to date.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from metermatrix.averages import (
    average_per_meter_kwh,
    region_day_averages_kwh,
    region_slot_averages_kwh,
)
from metermatrix.periods import Period, last_due_boundary
from metermatrix.slots import SLOT_MINUTES, SLOTS_PER_DAY, interval_start, local_day
from metermatrix.storage import UNASSIGNED, Storage
from metermatrix.today import OpenDaySums

_HALF_HOUR = timedelta(minutes=SLOT_MINUTES)


def _tz(period: Period) -> tzinfo:
    tz = period.start.tzinfo
    if tz is None:
        raise ValueError("a period must be timezone-aware")
    return tz


def _slot_grid(period: Period) -> list[tuple[date, int, datetime]]:
    """(day, slot, interval start) of every half hour inside the period."""
    tz = _tz(period)
    grid = []
    for day in period.days():
        for slot in range(SLOTS_PER_DAY):
            start = interval_start(day, slot, tz)
            if period.start <= start < period.end:
                grid.append((day, slot, start))
    return grid


def _time_column(starts: Sequence[datetime], tz: tzinfo) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime([s.astimezone(tz) for s in starts], utc=True)
                            ).tz_convert(tz)


def half_hourly(storage: Storage, meter_ids: Sequence[int], period: Period,
                now: datetime) -> pd.DataFrame:
    """Every half hour of ``period`` for each meter.

    Columns: ``meter_id`` (int), ``start`` (interval start, tz-aware local time), ``day``
    (local date), ``slot`` (0..47), ``energy_kwh`` [kWh] (NaN without a reading),
    ``status`` ("ok", "missing", "pending").
    """
    grid = _slot_grid(period)
    position = {(day, slot): index for index, (day, slot, _) in enumerate(grid)}
    row_of = {meter_id: row for row, meter_id in enumerate(meter_ids)}
    energy_kwh = np.full((len(meter_ids), len(grid)), np.nan)
    if grid:
        for reading in storage.readings_between(list(meter_ids), grid[0][0], grid[-1][0]):
            column = position.get((reading.day, reading.slot))
            if column is not None:
                energy_kwh[row_of[reading.meter_id], column] = reading.energy_wh / 1000
    boundary = last_due_boundary(now, _tz(period))
    due = np.array([start + _HALF_HOUR <= boundary for _, _, start in grid], dtype=bool)
    count = len(meter_ids)
    return pd.DataFrame({
        "meter_id": np.repeat(np.asarray(meter_ids, dtype=np.int64), len(grid)),
        "start": _time_column([start for _, _, start in grid] * count, _tz(period)),
        "day": [day for day, _, _ in grid] * count,
        "slot": np.tile(np.array([slot for _, slot, _ in grid], dtype=np.int64), count),
        "energy_kwh": energy_kwh.ravel(),
        "status": _half_hour_status(energy_kwh, due).ravel(),
    })


def _half_hour_status(energy_kwh: NDArray[np.float64], due: NDArray[np.bool_]
                      ) -> NDArray[np.str_]:
    waiting = np.where(due, "missing", "pending")
    return np.where(np.isnan(energy_kwh), waiting[np.newaxis, :], "ok")


def daily(storage: Storage, meter_ids: Sequence[int], period: Period,
          now: datetime) -> pd.DataFrame:
    """Every day of ``period`` for each meter, today's partial day summed from its readings.

    Columns: ``meter_id`` (int), ``start`` (local midnight, tz-aware), ``day`` (local date),
    ``energy_kwh`` [kWh] (NaN without any reading), ``readings`` (half hours that reported,
    0..48), ``status`` ("complete", "incomplete", "missing", "today", "pending").
    """
    days = period.days()
    today = local_day(now, _tz(period))
    column_of = {day: column for column, day in enumerate(days)}
    row_of = {meter_id: row for row, meter_id in enumerate(meter_ids)}
    energy_wh = np.zeros((len(meter_ids), len(days)), dtype=np.int64)
    readings = np.zeros((len(meter_ids), len(days)), dtype=np.int64)
    closed = np.zeros((len(meter_ids), len(days)), dtype=bool)
    for total in storage.daily_totals_between(list(meter_ids), days[0], days[-1]):
        row, column = row_of[total.meter_id], column_of[total.day]
        energy_wh[row, column], readings[row, column] = total.energy_wh, total.readings
        closed[row, column] = True
    open_days = [day for day in days if day <= today and not closed[:, column_of[day]].all()]
    if open_days:
        for reading in storage.readings_between(list(meter_ids), open_days[0], open_days[-1]):
            row, column = row_of[reading.meter_id], column_of[reading.day]
            if not closed[row, column]:
                energy_wh[row, column] += reading.energy_wh
                readings[row, column] += 1
    count = len(meter_ids)
    return pd.DataFrame({
        "meter_id": np.repeat(np.asarray(meter_ids, dtype=np.int64), len(days)),
        "start": _time_column([interval_start(day, 0, _tz(period)) for day in days] * count,
                              _tz(period)),
        "day": days * count,
        "energy_kwh": np.where(readings > 0, energy_wh / 1000, np.nan).ravel(),
        "readings": readings.ravel(),
        "status": _day_status(readings, days, today).ravel(),
    })


def _day_status(readings: NDArray[np.int64], days: list[date], today: date) -> NDArray[np.str_]:
    past = np.where(readings >= SLOTS_PER_DAY, "complete",
                    np.where(readings > 0, "incomplete", "missing"))
    when = np.array([(day > today) - (day < today) for day in days])[np.newaxis, :]
    return np.where(when < 0, past, np.where(when == 0, "today", "pending"))


def consumption(storage: Storage, meter_ids: Sequence[int], period: Period,
                now: datetime) -> pd.DataFrame:
    """``half_hourly`` or ``daily`` rows, whichever the period's resolution asks for."""
    if period.resolution == "half-hour":
        return half_hourly(storage, meter_ids, period, now)
    return daily(storage, meter_ids, period, now)


def region_average(storage: Storage, region: str | None, period: Period,
                   now: datetime, today: OpenDaySums | None = None) -> pd.DataFrame:
    """The region's average consumption per reporting meter for each interval of ``period``.

    Columns: ``start`` (tz-aware local time), ``day`` (local date), ``slot`` (half-hourly
    periods only), ``average_kwh`` [kWh per meter] (NaN where no meter of the region reported).
    ``region`` None means the meters without a region ("Unassigned"). ``today``, the
    region's sums of the open day from the server's store, answers for that day instead of
    the database.
    """
    name = region or UNASSIGNED
    if period.resolution == "half-hour":
        return _region_half_hourly(storage, name, period, today)
    return _region_daily(storage, name, period, now, today)


def region_total_kwh(storage: Storage, region: str | None, period: Period, now: datetime,
                     today: OpenDaySums | None = None) -> float:
    """The region's average meter over ``period`` [kWh]: ``region_average`` summed over its
    intervals (NaN when no meter of the region reported), the figure the residents' pages
    show beside a meter's total and the dashboards show as the average per meter."""
    return _total(region_average(storage, region, period, now, today)["average_kwh"]
                  .to_numpy(dtype=np.float64))


def region_slot_energy(storage: Storage, region: str, first: date, last: date,
                       today: OpenDaySums | None = None) -> list[tuple[date, int, int, int]]:
    """``Storage.region_slot_energy``, with the open day taken from ``today`` when given."""
    if today is None or not first <= today.day <= last:
        return storage.region_slot_energy(region, first, last)
    rows = (storage.region_slot_energy(region, first, today.day - timedelta(days=1))
            if first < today.day else [])
    energy_wh, readings = today.region_slots(region)
    rows.extend((today.day, slot, int(energy_wh[slot]), int(readings[slot]))
                for slot in np.flatnonzero(readings).tolist())
    return rows


def _region_half_hourly(storage: Storage, region: str, period: Period,
                        today: OpenDaySums | None) -> pd.DataFrame:
    grid = _slot_grid(period)
    position = {(day, slot): index for index, (day, slot, _) in enumerate(grid)}
    average_kwh = np.full(len(grid), np.nan)
    if grid:
        slots = region_slot_averages_kwh(
            region_slot_energy(storage, region, grid[0][0], grid[-1][0], today))
        for key, value in slots.items():
            index = position.get(key)
            if index is not None:
                average_kwh[index] = value
    return pd.DataFrame({
        "start": _time_column([start for _, _, start in grid], _tz(period)),
        "day": [day for day, _, _ in grid],
        "slot": np.array([slot for _, slot, _ in grid], dtype=np.int64),
        "average_kwh": average_kwh,
    })


def _open_day_averages(storage: Storage, region: str, open_days: list[date],
                       today: OpenDaySums | None) -> dict[date, float]:
    sums: dict[date, list[int]] = {}
    for day, _, energy_wh, readings in region_slot_energy(
            storage, region, open_days[0], open_days[-1], today):
        if day in open_days and readings:
            entry = sums.setdefault(day, [0, 0, 0])
            entry[0] += energy_wh
            entry[1] += readings
            entry[2] += 1
    return {day: float(average_per_meter_kwh(*entry)) for day, entry in sums.items()}


def _region_daily(storage: Storage, region: str, period: Period, now: datetime,
                  today_store: OpenDaySums | None) -> pd.DataFrame:
    days = period.days()
    today = local_day(now, _tz(period))
    average_kwh = {day: np.nan for day in days}
    closed = region_day_averages_kwh(storage.region_days_between(days[0], days[-1]), region)
    average_kwh.update({day: value for day, value in closed.items() if day in average_kwh})
    open_days = [day for day in days if day <= today and np.isnan(average_kwh[day])]
    if open_days:  # a day not closed yet: its readings so far, over the half hours with data
        average_kwh.update(_open_day_averages(storage, region, open_days, today_store))
    return pd.DataFrame({
        "start": _time_column([interval_start(day, 0, _tz(period)) for day in days],
                              _tz(period)),
        "day": days,
        "average_kwh": [average_kwh[day] for day in days],
    })


class RegionAverageCache:
    """``region_average`` frames, each reused for up to ``max_age_s`` seconds.

    Every resident of a region compares with the same average meter, so one computation
    per region, period and minute serves all of them; a new half hour falling due starts
    a new entry at once. Safe to share between threads.
    """

    def __init__(self, max_age_s: float = 60.0, size: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.size = size
        self.clock = clock
        self._frames: dict[tuple[object, ...], tuple[float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def get(self, storage: Storage, region: str | None, period: Period,
            now: datetime, today: OpenDaySums | None = None) -> pd.DataFrame:
        """``region_average(storage, region, period, now, today)``, reused for ``max_age_s``."""
        key = (region or UNASSIGNED, period.start, period.end, period.resolution,
               last_due_boundary(now, _tz(period)))
        with self._lock:
            made_at, frame = self._frames.get(key, (-math.inf, None))
        if frame is None or self.clock() - made_at > self.max_age_s:
            frame = region_average(storage, region, period, now, today)
            with self._lock:
                self._frames.pop(key, None)
                self._frames[key] = (self.clock(), frame)
                while len(self._frames) > self.size:
                    del self._frames[next(iter(self._frames))]
        return frame


@dataclass(frozen=True)
class MeterConsumption:
    """One meter's period next to the period before it and its region's average meter.

    ``rows`` has one row per interval: ``start`` (tz-aware), ``day``, ``slot`` (half-hourly
    only), ``energy_kwh`` [kWh] (NaN when missing), ``status``, ``readings`` (daily only),
    ``previous_kwh`` [kWh] (the interval at the same position of the previous period) and
    ``region_average_kwh`` [kWh per meter].
    """

    meter_id: int
    region: str
    period: Period
    previous: Period
    rows: pd.DataFrame
    #: Totals [kWh] over the intervals that are due so far (missing ones count as nothing;
    #: NaN when there is no value at all).
    total_kwh: float
    previous_total_kwh: float
    region_total_kwh: float
    #: True while the period is still running (today, this week, this month).
    is_open: bool

    @property
    def missing(self) -> int:
        """Intervals with no reading although it was due (half hours, or days without any)."""
        return int((self.rows["status"] == "missing").sum())

    @property
    def due(self) -> int:
        """Intervals that are due so far (not in the future)."""
        return int((self.rows["status"] != "pending").sum())


def _total(values: NDArray[np.float64]) -> float:
    """The sum of the values that exist, NaN when none does."""
    return float(np.nansum(values)) if np.isfinite(values).any() else math.nan


def _previous_up_to_now(storage: Storage, meter_id: int, period: Period, previous: Period,
                        before: NDArray[np.float64], now: datetime) -> NDArray[np.float64]:
    """The previous period's values [kWh] up to the same offset into it as ``now`` is.

    Whole days come from ``before`` (its daily values); the day the offset falls in adds
    its half hours before the offset.
    """
    offset = last_due_boundary(now, _tz(period)) - period.start
    cutoff = min(previous.start + offset, previous.end)
    whole = (cutoff.date() - previous.first_day).days
    values = before[:whole]
    part_start = _local_midnight(previous.first_day + timedelta(days=whole), _tz(period))
    if part_start < cutoff:
        part = Period("custom", part_start, cutoff, "half-hour")
        halves = half_hourly(storage, [meter_id], part, now)["energy_kwh"].to_numpy()
        values = np.concatenate([values, halves])
    return np.asarray(values, dtype=np.float64)


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), tz)


def meter_consumption(storage: Storage, meter_id: int, region: str | None, period: Period,
                      now: datetime, averages: RegionAverageCache | None = None,
                      today: OpenDaySums | None = None) -> MeterConsumption:
    """One meter's consumption in ``period``, with the previous period and region average.

    ``averages`` shares the region's averages between calls (pages); notebooks leave it out.
    ``today`` (copied from the server's store of the open day) gives its region sums.
    Totals cover the intervals that are due: an open period (today, this week) is compared
    with the same stretch of the previous one, a closed period with the whole of it.
    """
    rows = consumption(storage, [meter_id], period, now).drop(columns="meter_id")
    previous = period.previous()
    before = consumption(storage, [meter_id], previous, now)["energy_kwh"].to_numpy()
    region_frame = (averages.get(storage, region, period, now, today) if averages is not None
                    else region_average(storage, region, period, now, today))
    region_kwh = region_frame["average_kwh"].to_numpy()
    aligned = np.full(len(rows), np.nan)
    aligned[: min(len(rows), len(before))] = before[: len(rows)]
    rows["previous_kwh"] = aligned
    rows["region_average_kwh"] = region_kwh
    due = (rows["status"] != "pending").to_numpy()
    previous_due = before if period.end <= now else aligned[due]
    if period.resolution == "day" and period.end > now:
        previous_due = _previous_up_to_now(storage, meter_id, period, previous, before, now)
    return MeterConsumption(
        meter_id=meter_id, region=region or UNASSIGNED, period=period, previous=previous,
        rows=rows,
        total_kwh=_total(rows["energy_kwh"].to_numpy()[due]),
        previous_total_kwh=_total(previous_due),
        region_total_kwh=_total(region_kwh[due]),
        is_open=period.end > now,
    )

