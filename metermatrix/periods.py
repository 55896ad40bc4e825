"""Named reporting periods (seed section 3: prev-hr, current-day, ...) as local time spans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

from metermatrix.slots import SEND_DELAY, SLOT_MINUTES

Resolution = Literal["half-hour", "day"]

#: The residents' periods, in the order pages list them.
RESIDENT_PERIODS = ("prev-hr", "current-day", "current-week", "current-month", "prev-month")
#: The management dashboard's named periods (plus custom date ranges).
DASHBOARD_PERIODS = ("current-day", "yesterday", "current-week", "current-month", "prev-month")

_TITLES = {
    "prev-hr": "Previous hour",
    "current-day": "Today",
    "yesterday": "Yesterday",
    "current-week": "This week",
    "current-month": "This month",
    "prev-month": "Last month",
    "custom": "Custom range",
}


class PeriodError(ValueError):
    """An unknown period name or an impossible date range."""


@dataclass(frozen=True, slots=True)
class Period:
    """A span of local time ``[start, end)`` and the resolution it is shown at."""

    name: str
    start: datetime
    end: datetime
    resolution: Resolution

    @property
    def title(self) -> str:
        """Human title, e.g. "This week"."""
        return _TITLES.get(self.name, self.name)

    @property
    def first_day(self) -> date:
        """First local day the period touches."""
        return self.start.date()

    @property
    def last_day(self) -> date:
        """Last local day the period touches."""
        return (self.end - timedelta(microseconds=1)).date()

    def days(self) -> list[date]:
        """Every local day the period touches, in order."""
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=offset) for offset in range(count)]

    def previous(self) -> Period:
        """The same kind of period just before this one (for comparisons)."""
        if self.name in ("current-month", "prev-month"):
            first = _month_start(self.first_day - timedelta(days=1))
            if self.name == "prev-month":
                end = self.start
            else:  # the same number of days into last month, capped at its end
                end = min(self.start, _local(first, self.start.tzinfo) + (self.end - self.start))
            return Period(self.name, _local(first, self.start.tzinfo), end, self.resolution)
        span = self.end - self.start
        if self.name in ("current-day", "current-week"):
            span = timedelta(days=1 if self.name == "current-day" else 7)
        return Period(self.name, self.start - span, self.start - span + (self.end - self.start),
                      self.resolution)


def _local(day: date, tz: tzinfo | None) -> datetime:
    return datetime.combine(day, time(), tz)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def last_due_boundary(now: datetime, tz: tzinfo) -> datetime:
    """End of the latest half hour whose packet is due by ``now`` (local, aware)."""
    local = now.astimezone(tz) - SEND_DELAY
    minute = local.minute - local.minute % SLOT_MINUTES
    return local.replace(minute=minute, second=0, microsecond=0)


def resolve_period(name: str, now: datetime, tz: tzinfo) -> Period:
    """The period ``name`` as of instant ``now`` in time zone ``tz``."""
    local = now.astimezone(tz)
    today = _local(local.date(), tz)
    if name == "prev-hr":
        end = last_due_boundary(now, tz)
        return Period(name, end - timedelta(hours=1), end, "half-hour")
    if name == "current-day":
        return Period(name, today, today + timedelta(days=1), "half-hour")
    if name == "yesterday":
        return Period(name, today - timedelta(days=1), today, "half-hour")
    if name == "current-week":
        monday = today - timedelta(days=local.weekday())
        return Period(name, monday, today + timedelta(days=1), "day")
    if name == "current-month":
        return Period(name, _local(_month_start(local.date()), tz), today + timedelta(days=1),
                      "day")
    if name == "prev-month":
        this_month = _month_start(local.date())
        first = _month_start(this_month - timedelta(days=1))
        return Period(name, _local(first, tz), _local(this_month, tz), "day")
    valid = ", ".join(RESIDENT_PERIODS + ("yesterday",))
    raise PeriodError(f"unknown period {name!r}; valid periods are {valid}")


def custom_period(first: date, last: date, tz: tzinfo) -> Period:
    """Days ``first``..``last`` inclusive, at daily resolution."""
    if last < first:
        raise PeriodError("the end date is before the start date")
    if (last - first).days > 3660:
        raise PeriodError("a custom range may span at most ten years")
    return Period("custom", _local(first, tz), _local(last + timedelta(days=1), tz), "day")
