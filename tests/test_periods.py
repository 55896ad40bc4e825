"""Named reporting periods in the utility's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from metermatrix.periods import (
    DASHBOARD_PERIODS,
    RESIDENT_PERIODS,
    PeriodError,
    custom_period,
    last_due_boundary,
    resolve_period,
)

UTC_ZONE = ZoneInfo("UTC")
SGT = ZoneInfo("Asia/Singapore")
# Wednesday 2025-02-12, 10:40 UTC (18:40 in Singapore)
NOW = datetime(2025, 2, 12, 10, 40, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)


def test_prev_hr_is_the_last_two_half_hours_already_sent() -> None:
    period = resolve_period("prev-hr", NOW, UTC_ZONE)
    assert (period.start, period.end) == (local(UTC_ZONE, 2025, 2, 12, 9, 30),
                                          local(UTC_ZONE, 2025, 2, 12, 10, 30))
    assert period.resolution == "half-hour"


def test_prev_hr_waits_for_the_send_minute() -> None:
    at_send = resolve_period("prev-hr", datetime(2025, 2, 12, 10, 31, tzinfo=UTC), UTC_ZONE)
    before = resolve_period("prev-hr", datetime(2025, 2, 12, 10, 30, tzinfo=UTC), UTC_ZONE)
    assert at_send.end == local(UTC_ZONE, 2025, 2, 12, 10, 30)
    assert before.end == local(UTC_ZONE, 2025, 2, 12, 10, 0)


def test_last_due_boundary_is_local() -> None:
    assert last_due_boundary(NOW, SGT) == local(SGT, 2025, 2, 12, 18, 30)


def test_current_day_is_the_local_calendar_day() -> None:
    period = resolve_period("current-day", NOW, UTC_ZONE)
    assert (period.start, period.end) == (local(UTC_ZONE, 2025, 2, 12),
                                          local(UTC_ZONE, 2025, 2, 13))
    assert period.days() == [date(2025, 2, 12)]


def test_current_day_in_singapore_starts_at_16_00_utc_the_day_before() -> None:
    late_evening_utc = datetime(2025, 2, 12, 16, 30, tzinfo=UTC)  # 00:30 on the 13th in SGT
    period = resolve_period("current-day", late_evening_utc, SGT)
    assert period.start == datetime(2025, 2, 12, 16, 0, tzinfo=UTC)
    assert period.days() == [date(2025, 2, 13)]


def test_yesterday() -> None:
    period = resolve_period("yesterday", NOW, UTC_ZONE)
    assert period.days() == [date(2025, 2, 11)]
    assert period.resolution == "half-hour"


def test_current_week_runs_from_monday_through_today() -> None:
    period = resolve_period("current-week", NOW, UTC_ZONE)
    assert period.days() == [date(2025, 2, 10), date(2025, 2, 11), date(2025, 2, 12)]
    assert period.resolution == "day"


def test_current_week_on_a_monday_is_one_day() -> None:
    period = resolve_period("current-week", datetime(2025, 2, 10, 1, tzinfo=UTC), UTC_ZONE)
    assert period.days() == [date(2025, 2, 10)]


def test_current_month_runs_from_the_first_through_today() -> None:
    period = resolve_period("current-month", NOW, UTC_ZONE)
    assert period.first_day == date(2025, 2, 1)
    assert period.last_day == date(2025, 2, 12)
    assert len(period.days()) == 12


def test_prev_month_in_january_is_last_december() -> None:
    period = resolve_period("prev-month", datetime(2025, 1, 15, tzinfo=UTC), UTC_ZONE)
    assert (period.first_day, period.last_day) == (date(2024, 12, 1), date(2024, 12, 31))


def test_previous_of_current_day_is_the_whole_day_before() -> None:
    previous = resolve_period("current-day", NOW, UTC_ZONE).previous()
    assert previous.days() == [date(2025, 2, 11)]
    assert previous.end - previous.start == timedelta(days=1)


def test_previous_of_current_week_is_the_same_days_a_week_earlier() -> None:
    previous = resolve_period("current-week", NOW, UTC_ZONE).previous()
    assert previous.days() == [date(2025, 2, 3), date(2025, 2, 4), date(2025, 2, 5)]


def test_previous_of_prev_hr_is_the_hour_before() -> None:
    period = resolve_period("prev-hr", NOW, UTC_ZONE)
    assert period.previous().end == period.start
    assert period.previous().start == period.start - timedelta(hours=1)


def test_previous_of_current_month_is_capped_at_the_end_of_last_month() -> None:
    period = resolve_period("current-month", datetime(2025, 3, 31, 12, tzinfo=UTC), UTC_ZONE)
    previous = period.previous()
    assert (previous.first_day, previous.last_day) == (date(2025, 2, 1), date(2025, 2, 28))


def test_previous_of_current_month_covers_as_many_days() -> None:
    previous = resolve_period("current-month", NOW, UTC_ZONE).previous()
    assert (previous.first_day, previous.last_day) == (date(2025, 1, 1), date(2025, 1, 12))


def test_previous_of_prev_month_is_the_month_before_it() -> None:
    previous = resolve_period("prev-month", datetime(2025, 3, 5, tzinfo=UTC), UTC_ZONE).previous()
    assert (previous.first_day, previous.last_day) == (date(2025, 1, 1), date(2025, 1, 31))


@pytest.mark.parametrize("name", sorted(set(RESIDENT_PERIODS + DASHBOARD_PERIODS)))
def test_every_named_period_resolves_with_a_title(name: str) -> None:
    period = resolve_period(name, NOW, SGT)
    assert period.start < period.end
    assert period.title and period.title != name
    assert period.start.utcoffset() == timedelta(hours=8)


def test_unknown_period_lists_the_valid_ones() -> None:
    with pytest.raises(PeriodError, match="valid periods are prev-hr"):
        resolve_period("last-year", NOW, UTC_ZONE)


def test_custom_period_is_inclusive_of_both_dates() -> None:
    period = custom_period(date(2025, 1, 30), date(2025, 2, 2), SGT)
    assert period.days() == [date(2025, 1, 30), date(2025, 1, 31), date(2025, 2, 1),
                             date(2025, 2, 2)]
    assert period.resolution == "day"
    assert period.title == "Custom range"


def test_custom_period_refuses_reversed_or_huge_ranges() -> None:
    with pytest.raises(PeriodError, match="before the start"):
        custom_period(date(2025, 2, 2), date(2025, 2, 1), UTC_ZONE)
    with pytest.raises(PeriodError, match="ten years"):
        custom_period(date(2000, 1, 1), date(2025, 1, 1), UTC_ZONE)


def test_day_of_a_daylight_saving_change_is_still_one_day() -> None:
    london = ZoneInfo("Europe/London")
    period = resolve_period("current-day", datetime(2025, 3, 30, 12, tzinfo=UTC), london)
    assert period.days() == [date(2025, 3, 30)]
