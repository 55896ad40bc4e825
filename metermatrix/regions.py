"""Region-wise consumption for the management dashboard, as pandas DataFrames.

Closed days come from ``region_daily`` and ``daily_totals``; today (and any day not yet
closed) is summed from the half-hourly ``readings``, so today's figures are always current.
Energy is in kilowatt-hours [kWh]. A region's average per meter is the residents' pages'
own figure (``queries.region_total_kwh``, defined in ``averages.py``): missing readings
count neither as zero nor as a whole meter. Completeness is readings received over half
hours expected, where each meter of the region owes 48 readings a closed day and, today,
one per half hour already due. A meter owes readings only from its first day with a reading
or an imported total (the master data has no installation date): a meter added today owes
nothing for the days before. Those first days are read as counts per region and day
(``Storage.region_first_days``, kept by the database), never from the readings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd

from metermatrix.fleet import REGIONS
from metermatrix.meterdirectory import (
    MeterDirectory,
    MeterTable,
    TodayFigures,
    meter_frame,
    meters_frame,
    read_today,
)
from metermatrix.periods import Period
from metermatrix.queries import region_total_kwh
from metermatrix.slots import SLOTS_PER_DAY, local_day, slots_elapsed
from metermatrix.storage import UNASSIGNED, Storage
from metermatrix.today import OpenDaySums
from metermatrix.topmeters import top_meter_totals

#: Column order of every per-region frame.
__all__ = ["MeterDirectory", "Snapshot", "meters_frame", "take_snapshot"]

SUMMARY_COLUMNS = ("energy_kwh", "meters", "average_kwh", "readings", "expected",
                   "completeness")


@dataclass(frozen=True)
class Snapshot:
    """What the dashboard needs from storage at one instant, read once per refresh.

    ``table``: the meters (``MeterTable``). ``today``: today's figures (``TodayFigures``).
    ``first_days``: (region, first day, meters) as ``Storage.region_first_days`` gives
    them; meters without any data are left out.
    """

    now: datetime
    tz: tzinfo
    table: MeterTable
    figures: TodayFigures
    closed: frozenset[date]
    first_days: list[tuple[str, date, int]]

    @property
    def meters(self) -> pd.DataFrame:
        """Index ``meter_id``; columns ``name``, ``region`` (UNASSIGNED if unknown)."""
        return self.table.frame

    @property
    def today_totals(self) -> pd.DataFrame:
        """Index ``meter_id``; ``energy_kwh`` [kWh], ``readings``, for the meters that sent
        anything today."""
        return self.figures.totals

    @property
    def today_sums(self) -> OpenDaySums:
        """Today's energy and readings per region and slot (``queries.region_average``)."""
        return self.figures.sums

    @property
    def today(self) -> date:
        """The utility's calendar day at ``now``."""
        return local_day(self.now, self.tz)

    def regions(self) -> list[str]:
        """The five regions, plus UNASSIGNED when some meter has no region."""
        unassigned = self.table.counts.get(UNASSIGNED, 0) > 0
        return list(REGIONS) + ([UNASSIGNED] if unassigned else [])

    @cached_property
    def _meter_counts(self) -> pd.Series:
        counts = pd.Series(self.table.counts, dtype="int64")
        return counts.reindex(self.regions(), fill_value=0).astype("int64")

    def meter_counts(self) -> pd.Series:
        """Meters per region, every region listed (0 if none)."""
        return self._meter_counts.copy()

    @cached_property
    def _first_days_by_region(self) -> dict[str, tuple[npt.NDArray[np.int64],
                                                        npt.NDArray[np.int64]]]:
        """{region: (first days as ordinals ascending, meters started by each)}."""
        found: dict[str, tuple[list[int], list[int]]] = {}
        for region, day, meters in sorted(self.first_days):
            days, started = found.setdefault(region, ([], []))
            days.append(day.toordinal())
            started.append((started[-1] if started else 0) + meters)
        return {region: (np.array(days, np.int64), np.array(started, np.int64))
                for region, (days, started) in found.items()}

    def due_meters(self, day: date) -> pd.Series:
        """Per region (every region listed): meters whose first day with data is ``day``
        or earlier."""
        ordinal = day.toordinal()
        due = {}
        for region, (days, started) in self._first_days_by_region.items():
            index = int(np.searchsorted(days, ordinal, side="right"))
            due[region] = int(started[index - 1]) if index else 0
        return pd.Series(due, dtype="int64").reindex(self.regions(), fill_value=0)

    def expected_readings(self, days: Sequence[date]) -> pd.Series:
        """Per region (every region listed): the half-hour readings its meters owe over
        ``days`` by ``now``, each meter from its first day with data on."""
        owed = pd.Series(0, index=self.regions(), dtype="int64")
        for day in days:
            owed += self.due_meters(day) * self.due_slots(day)
        return owed

    def due_slots(self, day: date) -> int:
        """Readings each meter owes for ``day`` by ``now`` (48 for a past day)."""
        if day < self.today:
            return SLOTS_PER_DAY
        if day > self.today:
            return 0
        return slots_elapsed(day, self.now, self.tz)


def day_meter_totals(storage: Storage, day: date) -> pd.DataFrame:
    """Per meter that sent readings on ``day``: index ``meter_id``; ``energy_kwh``, ``readings``."""
    return _meter_frame(storage.meter_day_readings(day))


def _meter_frame(rows: Sequence[tuple[int, int, int]] | npt.NDArray[np.int64]
                 ) -> pd.DataFrame:
    array = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return meter_frame(array[:, 0], array[:, 1], array[:, 2])


def take_snapshot(storage: Storage, now: datetime, tz: tzinfo,
                  directory: MeterDirectory | None = None) -> Snapshot:
    """Read the meters (when changed), today's rows and the meters' first days once."""
    table = (directory or MeterDirectory()).table(storage)
    today = local_day(now, tz)
    figures = read_today(table, today, *storage.day_matrix(today))
    return Snapshot(now, tz, table, figures, frozenset(storage.closed_days()),
                    storage.region_first_days())


def _span(period: Period, snapshot: Snapshot) -> tuple[list[date], list[date]]:
    """The period's closed days and its open days up to today."""
    days = [day for day in period.days() if day <= snapshot.today]
    return ([day for day in days if day in snapshot.closed],
            [day for day in days if day not in snapshot.closed])


def _open_day_frame(storage: Storage, snapshot: Snapshot, day: date) -> pd.DataFrame:
    if day == snapshot.today:
        return snapshot.today_totals
    return day_meter_totals(storage, day)


def _by_region(storage: Storage, snapshot: Snapshot, day: date) -> pd.DataFrame:
    """An open day's totals per region: columns energy_kwh, readings."""
    if day == snapshot.today:
        return snapshot.figures.by_region[["energy_kwh", "readings"]]
    totals = day_meter_totals(storage, day)
    codes = snapshot.table.codes_of(totals.index.to_numpy())[0]
    region = pd.Index(snapshot.table.names)[codes]
    return totals.groupby(region)[["energy_kwh", "readings"]].sum()


def daily_frames(storage: Storage, period: Period,
                 snapshot: Snapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(energy [kWh], readings) per day (index) and region (columns), days up to today."""
    closed, open_days = _span(period, snapshot)
    rows: list[tuple[date, str, float, int]] = []
    if closed:
        rows.extend((entry.day, entry.region, entry.energy_wh / 1000, entry.readings)
                    for entry in storage.region_days_between(min(closed), max(closed)))
    for day in open_days:
        summed = _by_region(storage, snapshot, day)
        rows.extend((day, str(region), float(energy_kwh), int(readings))
                    for region, energy_kwh, readings
                    in zip(summed.index, summed["energy_kwh"], summed["readings"], strict=True))
    frame = pd.DataFrame(rows, columns=["day", "region", "energy_kwh", "readings"])
    index = pd.Index(sorted(closed + open_days), name="day")
    regions = pd.Index(snapshot.regions(), name="region")
    energy = frame.pivot_table(index="day", columns="region", values="energy_kwh",
                               aggfunc="sum", fill_value=0.0)
    readings = frame.pivot_table(index="day", columns="region", values="readings",
                                 aggfunc="sum", fill_value=0)
    return (energy.reindex(index=index, columns=regions, fill_value=0.0).astype(float),
            readings.reindex(index=index, columns=regions, fill_value=0).astype("int64"))


def region_daily_totals(storage: Storage, period: Period, snapshot: Snapshot) -> pd.DataFrame:
    """Energy per day and region [kWh]: index ``day`` (the period's days up to today), one
    column per region."""
    return daily_frames(storage, period, snapshot)[0]


def region_summary(storage: Storage, period: Period, snapshot: Snapshot,
                   frames: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Per region for ``period``: index ``region``; columns ``energy_kwh`` [kWh], ``meters``,
    ``average_kwh`` [kWh] (``queries.region_total_kwh``: the residents' pages' average
    meter, NaN when no meter of the region reported), ``readings``, ``expected`` (half
    hours due, each meter from its first day with data) and ``completeness`` (readings /
    expected, 0..1; NaN when nothing was due).

    ``frames`` are the period's ``daily_frames`` when the caller has them already.
    """
    energy, readings = frames or daily_frames(storage, period, snapshot)
    summary = pd.DataFrame({"energy_kwh": energy.sum(axis=0), "meters": snapshot.meter_counts(),
                            "readings": readings.sum(axis=0)})
    summary["average_kwh"] = [region_total_kwh(storage, str(region), period, snapshot.now,
                                               snapshot.today_sums)
                              for region in summary.index]
    summary["expected"] = snapshot.expected_readings(list(energy.index))
    summary["completeness"] = summary["readings"] / summary["expected"].where(
        summary["expected"] > 0)
    summary.index.name = "region"
    return summary[list(SUMMARY_COLUMNS)]


def today_completeness(snapshot: Snapshot) -> pd.DataFrame:
    """Per region today: index ``region``; ``meters``, ``reporting`` (meters heard from),
    ``readings``, ``expected`` (half hours due so far), ``completeness`` (0..1 or NaN)."""
    today = snapshot.figures.by_region
    frame = pd.DataFrame({
        "meters": snapshot.meter_counts(),
        "reporting": today["reporting"],
        "readings": today["readings"],
    }).reindex(snapshot.regions()).fillna(0).astype("int64")
    frame["expected"] = snapshot.expected_readings([snapshot.today])
    frame["completeness"] = frame["readings"] / frame["expected"].where(frame["expected"] > 0)
    frame.index.name = "region"
    return frame


def silent_meters(snapshot: Snapshot, regions: Sequence[str] | None = None) -> pd.DataFrame:
    """Meters that sent nothing today: index ``meter_id``; ``name``, ``region``; by id."""
    table = snapshot.table
    silent = ~snapshot.figures.heard
    if regions is not None:
        silent &= np.isin(table.codes, _codes(table, regions))
    return table.frame.iloc[np.flatnonzero(silent)]


def _codes(table: MeterTable, regions: Sequence[str]) -> list[int]:
    return [table.names.index(region) for region in regions if region in table.names]


def _of_regions(table: MeterTable, regions: Sequence[str]
                ) -> Callable[[npt.NDArray[np.int64]], npt.NDArray[np.bool_]]:
    """Which of some meter ids are in ``regions`` (unknown meters count as UNASSIGNED)."""
    codes = _codes(table, regions)
    return lambda meter_ids: np.isin(table.codes_of(meter_ids)[0], codes)


def top_consumers(storage: Storage, period: Period, snapshot: Snapshot, count: int = 10,
                  regions: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``count`` meters that used most in ``period``: index ``meter_id``; ``name``,
    ``region``, ``energy_kwh`` [kWh], ``readings``; largest first.

    Closed days are summed from each day's totals read as columns (``topmeters.py``),
    never from rows of every meter and day.
    """
    closed, open_days = _span(period, snapshot)
    parts = [_open_day_frame(storage, snapshot, day) for day in open_days]
    columns = ["name", "region", "energy_kwh", "readings"]
    if not parts and not closed:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="meter_id"))
    totals = (pd.concat(parts).groupby(level=0).sum() if len(parts) > 1 else
              parts[0] if parts else _meter_frame(np.zeros((0, 3), np.int64)))
    wanted = None if regions is None else _of_regions(snapshot.table, regions)
    if wanted is not None:
        totals = totals[wanted(totals.index.to_numpy(np.int64))]
    if closed:
        totals = top_meter_totals(storage, closed, totals, count, wanted)
    top = totals.nlargest(count, "energy_kwh", keep="first")
    joined = top.join(snapshot.meters, how="left")
    joined["region"] = joined["region"].fillna(UNASSIGNED)
    joined["name"] = joined["name"].fillna("")
    joined.index.name = "meter_id"
    return joined[columns]
