"""Calendar periods of a meter's history: any day, week, month or year around a date."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from metermatrix.history import (
    history_nav,
    history_period,
    parse_history_date,
    unavailable_reason,
)
from metermatrix.periods import PeriodError

SGT = ZoneInfo("Asia/Singapore")
NOW = datetime(2026, 11, 18, 14, 10, tzinfo=SGT)  # a Wednesday


@pytest.mark.parametrize("kind, day, first, end", [
    ("day", date(2026, 2, 28), date(2026, 2, 28), date(2026, 3, 1)),
    ("week", date(2026, 11, 18), date(2026, 11, 16), date(2026, 11, 23)),
    ("week", date(2026, 11, 22), date(2026, 11, 16), date(2026, 11, 23)),  # a Sunday
    ("week", date(2026, 12, 30), date(2026, 12, 28), date(2027, 1, 4)),  # across a year
    ("month", date(2024, 2, 29), date(2024, 2, 1), date(2024, 3, 1)),
    ("month", date(2026, 12, 31), date(2026, 12, 1), date(2027, 1, 1)),
    ("year", date(2024, 7, 4), date(2024, 1, 1), date(2025, 1, 1)),
])
def test_a_calendar_period_holds_its_date(kind: str, day: date, first: date, end: date) -> None:
    period = history_period(kind, day, SGT)
    assert period.start == datetime.combine(first, datetime.min.time(), SGT)
    assert period.end == datetime.combine(end, datetime.min.time(), SGT)
    assert period.resolution == ("half-hour" if kind == "day" else "day")


def test_previous_and_following_are_the_neighbouring_calendar_periods() -> None:
    march = history_period("month", date(2024, 3, 15), SGT)
    assert march.previous().first_day == date(2024, 2, 1)
    assert march.previous().last_day == date(2024, 2, 29)
    assert march.following().first_day == date(2024, 4, 1)
    year = history_period("year", date(2025, 6, 1), SGT)
    assert (year.previous().first_day, year.previous().last_day) == (date(2024, 1, 1),
                                                                    date(2024, 12, 31))
    day = history_period("day", date(2026, 1, 1), SGT)
    assert day.previous().first_day == date(2025, 12, 31)


def test_titles_and_queries_name_the_period() -> None:
    assert history_period("day", date(2026, 12, 3), SGT).title == "Thu 3 Dec 2026"
    week = history_period("week", date(2026, 12, 3), SGT)
    assert week.title == "Week of Mon 30 Nov 2026"
    assert week.query == "period=week&date=2026-11-30"
    assert history_period("month", date(2026, 11, 9), SGT).title == "November 2026"
    assert history_period("year", date(2026, 11, 9), SGT).title == "2026"


@pytest.mark.parametrize("text", ["2026-13-01", "yesterday", "2026-1-1", "0001-01-01", "20261118"])
def test_a_date_that_is_not_yyyy_mm_dd_is_refused(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_history_date(text, NOW.date())


def test_no_date_means_today() -> None:
    assert parse_history_date(None, NOW.date()) == NOW.date()
    assert parse_history_date("", NOW.date()) == NOW.date()
    assert parse_history_date("2025-02-08", NOW.date()) == date(2025, 2, 8)


def test_future_and_before_the_first_reading_are_said_so() -> None:
    first = date(2026, 3, 10)
    tomorrow = history_period("day", NOW.date() + timedelta(days=1), SGT)
    assert "future" in (unavailable_reason(tomorrow, NOW, first) or "")
    february = history_period("month", date(2026, 2, 1), SGT)
    assert "before the meter's first reading, on Tue 10 Mar 2026" in (
        unavailable_reason(february, NOW, first) or "")
    assert unavailable_reason(history_period("month", first, SGT), NOW, first) is None
    assert unavailable_reason(history_period("week", NOW.date(), SGT), NOW, first) is None
    assert "not sent any reading" in (unavailable_reason(february, NOW, None) or "")


def test_navigation_stops_at_the_first_reading_and_at_today() -> None:
    this_week = history_period("week", NOW.date(), SGT)
    nav = history_nav(this_week, NOW, SGT, first_day=date(2026, 11, 10))
    assert nav.previous is not None and nav.previous.first_day == date(2026, 11, 9)
    assert nav.following is None  # next week is in the future
    first_week = history_nav(nav.previous, NOW, SGT, first_day=date(2026, 11, 10))
    assert first_week.previous is None and first_week.following == this_week
    assert first_week.query == "period=week&date=2026-11-09"
