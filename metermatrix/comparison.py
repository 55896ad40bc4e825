"""Fair comparisons of a resident's period: with the neighbours, and what each total covers.

A meter whose own readings for the period are less than ``FAIR_SHARE`` complete is not
compared with the region's average meter over the whole period (its gaps would read as
savings): only the intervals present on both sides are compared (half hours with a
reading; days with every half hour due so far), or, when there is none, the comparison
says that it is not possible yet and why. Energy is in kilowatt-hours [kWh].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from metermatrix.periods import Period, last_due_boundary
from metermatrix.queries import MeterConsumption
from metermatrix.slots import SLOT_MINUTES, SLOTS_PER_DAY

#: Below this share of the due half hours with a reading, only matching intervals compare.
FAIR_SHARE = 0.9
_HALF_HOUR = timedelta(minutes=SLOT_MINUTES)

Basis = Literal["period", "matched", "none"]


@dataclass(frozen=True)
class NeighbourComparison:
    """The resident against the region's average meter [kWh], and on what basis.

    ``basis``: "period" (own data at least 90 % complete: the whole period so far),
    "matched" (only ``intervals_compared`` of ``intervals_due`` intervals, those with the
    resident's readings) or "none" (no interval to compare yet).
    """

    basis: Basis
    own_kwh: float
    region_kwh: float
    half_hours_due: int
    half_hours_with_readings: int
    intervals_compared: int
    intervals_due: int
    interval_name: str  # "half hour" or "day"

    @property
    def completeness(self) -> float:
        """Share of the due half hours with a reading (0..1; 1 when nothing is due)."""
        if self.half_hours_due == 0:
            return 1.0
        return self.half_hours_with_readings / self.half_hours_due

    @property
    def change_percent(self) -> float:
        """How much more (+) or less (-) the resident used than the average meter [%]."""
        if self.basis == "none" or not self.region_kwh or math.isnan(self.region_kwh):
            return math.nan
        return (self.own_kwh - self.region_kwh) / self.region_kwh * 100

    def reason(self) -> str:
        """Why the comparison covers what it covers, in a sentence (empty for "period")."""
        share = f"{self.completeness:.0%}"
        readings = (f"{self.half_hours_with_readings} of the {self.half_hours_due} half "
                    f"hours so far have a reading from your meter ({share})")
        if self.basis == "period":
            return ""
        if self.basis == "matched":
            plural = "s" if self.intervals_due != 1 else ""
            return (f"Only {readings}, so this compares the {self.intervals_compared} of "
                    f"{self.intervals_due} {self.interval_name}{plural} with all your "
                    "readings, not the whole period.")
        whole = " and no day has all its readings yet" if self.interval_name == "day" else ""
        return (f"A comparison is not possible yet: only {readings}{whole}; a fair "
                f"comparison needs about {FAIR_SHARE:.0%} of them.")

    def as_record(self) -> dict[str, object]:
        """The comparison for the JSON API (kWh rounded to the watt-hour)."""
        def kwh(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 3)
        change = self.change_percent
        return {"basis": self.basis, "own_kwh": kwh(self.own_kwh),
                "region_kwh": kwh(self.region_kwh),
                "change_percent": None if math.isnan(change) else round(change, 1),
                "completeness": round(self.completeness, 3),
                "intervals_compared": self.intervals_compared,
                "intervals_due": self.intervals_due, "reason": self.reason()}


def due_half_hours_per_row(result: MeterConsumption, now: datetime) -> np.ndarray:
    """Half hours due so far in each row of ``result.rows`` (1 or 0 half-hourly; 0..48)."""
    status = result.rows["status"].to_numpy()
    if result.period.resolution == "half-hour":
        return np.asarray(status != "pending", dtype=np.int64)
    due = np.where(status == "pending", 0, SLOTS_PER_DAY)
    tz = result.period.start.tzinfo
    assert tz is not None
    boundary = last_due_boundary(now, tz)
    for index, start in enumerate(result.rows["start"]):
        if status[index] == "today":
            due[index] = max(0, int((boundary - start.to_pydatetime()) / _HALF_HOUR))
    return np.asarray(due, dtype=np.int64)


def compare_with_neighbours(result: MeterConsumption, now: datetime) -> NeighbourComparison:
    """The resident against the region's average meter, fairly (see the module docstring)."""
    rows = result.rows
    due = due_half_hours_per_row(result, now)
    half_hourly = result.period.resolution == "half-hour"
    energy = rows["energy_kwh"].to_numpy(dtype=np.float64)
    region = rows["region_average_kwh"].to_numpy(dtype=np.float64)
    if half_hourly:
        reported = np.isfinite(energy).astype(np.int64) * due
    else:
        reported = np.minimum(rows["readings"].to_numpy(dtype=np.int64), due)
    due_rows = due > 0
    base = {"half_hours_due": int(due.sum()), "half_hours_with_readings": int(reported.sum()),
            "intervals_due": int(due_rows.sum()),
            "interval_name": "half hour" if half_hourly else "day"}
    if base["half_hours_due"] and reported.sum() >= FAIR_SHARE * due.sum():
        return NeighbourComparison("period", result.total_kwh, result.region_total_kwh,
                                   intervals_compared=base["intervals_due"], **base)  # type: ignore[arg-type]
    matched = due_rows & (reported == due) & np.isfinite(energy) & np.isfinite(region)
    if not matched.any():
        return NeighbourComparison("none", math.nan, math.nan, intervals_compared=0,
                                   **base)  # type: ignore[arg-type]
    return NeighbourComparison("matched", float(energy[matched].sum()),
                               float(region[matched].sum()),
                               intervals_compared=int(matched.sum()), **base)  # type: ignore[arg-type]


def compared_until(period: Period, previous: Period, now: datetime) -> datetime:
    """The end of the stretch of ``previous`` its total covers: the same offset into it as
    ``now`` is into ``period`` while that is open, else the end of ``previous``."""
    if period.end <= now:
        return previous.end
    tz = period.start.tzinfo
    assert tz is not None
    offset = max(last_due_boundary(now, tz) - period.start, timedelta(0))
    return min(previous.start + offset, previous.end)


def total_until(period: Period, now: datetime) -> datetime:
    """The end of the stretch of ``period`` its total covers (the last half hour due)."""
    tz = period.start.tzinfo
    assert tz is not None
    return max(period.start, min(last_due_boundary(now, tz), period.end))


def until_text(period: Period, until: datetime) -> str:
    """How far a total of ``period`` reaches, for a label: "14:00", "Wed 25 Nov, 14:00"."""
    if until.time() == datetime.min.time() and until > period.start:
        last = until - timedelta(days=1)
        return f"the end of {last:%a %d %b}"
    if period.first_day == period.last_day or (
            until - period.start < timedelta(days=1) and until.date() == period.first_day):
        return f"{until:%H:%M}"
    return f"{until:%a %d %b}, {until:%H:%M}"
