"""Any day, week, month or year of a meter's history as a period (``?period=week&date=...``).

The seed's five named periods (``periods.RESIDENT_PERIODS``) are relative to now; these
are calendar periods around any date: the local day, the Monday-to-Sunday week, the
calendar month or the calendar year that holds it. Each knows the period before it (for
the comparison) and after it (for the page's previous/next links).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from metermatrix.periods import Period, PeriodError, Resolution

#: The calendar periods a resident can open at any date, in the order the picker lists them.
HISTORY_KINDS = ("day", "week", "month", "year")
#: How the period before each calendar period is called on the page and in the chart.
HISTORY_PREVIOUS_NAMES = {
    "day": "The day before",
    "week": "The week before",
    "month": "The month before",
    "year": "The year before",
}
_PICKER_LABELS = {"day": "Day", "week": "Week", "month": "Month", "year": "Year"}
#: The dates a calendar period may be asked for.
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(2199, 12, 31)


def _local(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tz)


def _first_and_end(kind: str, day: date) -> tuple[date, date]:
    """The first day of the ``kind`` period holding ``day`` and the day after its last."""
    if kind == "day":
        return day, day + timedelta(days=1)
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if kind == "month":
        first = day.replace(day=1)
        return first, (first + timedelta(days=32)).replace(day=1)
    if kind == "year":
        return day.replace(month=1, day=1), date(day.year + 1, 1, 1)
    raise PeriodError(f"unknown period {kind!r}; calendar periods are {', '.join(HISTORY_KINDS)}")


@dataclass(frozen=True, slots=True)
class HistoryPeriod(Period):
    """A calendar day, week, month or year (``name`` is the kind) in local time."""

    @property
    def title(self) -> str:
        """Human title: "Thu 3 Dec 2026", "Week of Mon 30 Nov 2026", "November 2026", "2026"."""
        first = self.first_day
        if self.name == "day":
            return f"{first:%a} {first.day} {first:%b %Y}"
        if self.name == "week":
            return f"Week of {first:%a} {first.day} {first:%b %Y}"
        if self.name == "month":
            return f"{first:%B %Y}"
        return f"{first.year}"

    def previous(self) -> HistoryPeriod:
        """The calendar period of the same kind just before this one."""
        return history_period(self.name, self.first_day - timedelta(days=1), _tz(self))

    def following(self) -> HistoryPeriod:
        """The calendar period of the same kind just after this one."""
        return history_period(self.name, self.last_day + timedelta(days=1), _tz(self))

    @property
    def query(self) -> str:
        """The URL query that opens this period: ``period=week&date=2026-11-30``."""
        return f"period={self.name}&date={self.first_day.isoformat()}"


def _tz(period: Period) -> tzinfo:
    tz = period.start.tzinfo
    if tz is None:
        raise ValueError("a period must be timezone-aware")
    return tz


def history_period(kind: str, day: date, tz: tzinfo) -> HistoryPeriod:
    """The calendar ``kind`` ("day", "week", "month", "year") holding local ``day``."""
    first, end = _first_and_end(kind, day)
    resolution: Resolution = "half-hour" if kind == "day" else "day"
    return HistoryPeriod(kind, _local(first, tz), _local(end, tz), resolution)


def parse_history_date(text: str | None, today: date) -> date:
    """The ``date`` argument (YYYY-MM-DD; empty or None: ``today``), or PeriodError."""
    if not text:
        return today
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"the date {text!r} is not a date written YYYY-MM-DD") from None
    if not FIRST_DATE <= day <= LAST_DATE or len(text) != 10:
        raise PeriodError(f"the date {text!r} is not a date written YYYY-MM-DD between"
                          f" {FIRST_DATE.year} and {LAST_DATE.year}")
    return day


def unavailable_reason(period: Period, now: datetime, first_day: date | None) -> str | None:
    """Why a calendar period has nothing to show (in the future, before the meter's first
    reading), or None when it has."""
    if period.start > now:
        return "This period has not begun yet: it is in the future."
    if first_day is None:
        return "This meter has not sent any reading yet."
    if period.last_day < first_day:
        return (f"This period is before the meter's first reading, on "
                f"{first_day:%a} {first_day.day} {first_day:%b %Y}.")
    return None


@dataclass(frozen=True)
class HistoryNav:
    """What the page needs to move through history: links, the picker's values and bounds."""

    #: The period shown; ``previous`` / ``following`` only for calendar periods.
    period: Period
    previous: HistoryPeriod | None
    following: HistoryPeriod | None
    #: The picker's preselected kind and date, and its earliest and latest dates.
    kind: str
    day: date
    first_day: date | None
    today: date

    @property
    def query(self) -> str:
        """The URL query of the period shown (for downloads and links)."""
        if isinstance(self.period, HistoryPeriod):
            return self.period.query
        return f"period={self.period.name}"

    @staticmethod
    def labels() -> list[tuple[str, str]]:
        """(kind, label) of each calendar period, for the picker's select."""
        return [(kind, _PICKER_LABELS[kind]) for kind in HISTORY_KINDS]


def history_nav(period: Period, now: datetime, tz: tzinfo, first_day: date | None
                ) -> HistoryNav:
    """Navigation for ``period``: previous/next when they hold anything, picker values."""
    today = now.astimezone(tz).date()
    if not isinstance(period, HistoryPeriod):
        day = min(period.last_day, today)
        kind = "day" if period.resolution == "half-hour" else "month"
        return HistoryNav(period, None, None, kind, day, first_day, today)
    previous: HistoryPeriod | None = period.previous()
    following: HistoryPeriod | None = period.following()
    if previous is not None and (first_day is None or previous.last_day < first_day):
        previous = None
    if following is not None and following.start > now:
        following = None
    day = min(max(period.first_day, first_day or period.first_day), today)
    return HistoryNav(period, previous, following, period.name, day, first_day, today)
