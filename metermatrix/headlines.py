"""Today's headline figures for the management home, cheap at city scale.

Today's part comes from today's store, which keeps its counts as readings arrive
(readings held, meters heard); the stored part is small queries a reader process
answers: the meters per region and by first day with data (the meters table and its
``first_day``, kept by the database) and yesterday's per-region totals (``region_daily``,
written when the day closed). No half-hourly history is read.

A meter is due only from its first day with a reading or an imported total on (as the
dashboards' completeness, ``regions.py``): a meter registered but never heard owes
nothing yet. A meter first heard today counts as due once its readings are committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from metermatrix.slots import slots_elapsed
from metermatrix.storage import Storage
from metermatrix.today import TodayStore


@dataclass(frozen=True)
class StoredFigures:
    """What the home needs from the database: ``meters`` registered, ``due_meters`` (those
    whose first day with data is today or earlier) and yesterday's total energy [kWh]
    (None while yesterday is not closed)."""

    meters: int
    due_meters: int
    yesterday: date
    yesterday_kwh: float | None


def stored_figures(storage: Storage, yesterday: date) -> StoredFigures:
    """Count the meters (all, and those due today) and sum yesterday's region totals (a
    reader job)."""
    meters = sum(storage.region_meter_counts().values())
    today = yesterday + timedelta(days=1)
    due_meters = sum(count for _, first, count in storage.region_first_days() if first <= today)
    regions = storage.region_days_between(yesterday, yesterday)
    closed = bool(regions) or yesterday in storage.closed_days()
    energy_kwh = sum(region.energy_wh for region in regions) / 1000 if closed else None
    return StoredFigures(meters, due_meters, yesterday, energy_kwh)


@dataclass(frozen=True)
class Headlines:
    """Today so far: ``readings`` received of ``due`` (each meter due today owes one per
    half hour already sent), ``silent`` meters (nothing received today) of ``meters``, and
    yesterday's total energy [kWh] (None while it is not closed)."""

    day: date
    readings: int
    due: int
    meters: int
    silent: int
    yesterday: date
    yesterday_kwh: float | None

    @property
    def completeness(self) -> float | None:
        """Readings received over readings due (0..1), None when nothing is due yet."""
        return self.readings / self.due if self.due else None


def yesterday_of(store: TodayStore) -> date:
    """The day before the store's open day."""
    return store.day - timedelta(days=1)


def today_headlines(store: TodayStore, stored: StoredFigures, now: datetime,
                    tz: tzinfo) -> Headlines:
    """The headline figures of the store's open day as of ``now``."""
    due = stored.due_meters * slots_elapsed(store.day, now, tz)
    silent = max(0, stored.meters - store.heard_count())
    return Headlines(store.day, store.reading_count(), due, stored.meters, silent,
                     stored.yesterday, stored.yesterday_kwh)
