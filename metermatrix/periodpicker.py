"""The dashboards' period control: a dropdown of named periods and a custom range's two days.

The two day boxes are text in ISO form (2026-11-01; "1 Nov 2026" is read too): a browser's
date input shows the browser's locale (11/01/2026 in the US) whatever the page says. While a
named period is chosen the boxes are disabled and show its real first and last day.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ipywidgets as widgets

from metermatrix.periods import Period, PeriodError, custom_period, resolve_period

#: The period picker's choices: (label, period name).
PERIOD_OPTIONS = (("Today", "current-day"), ("Yesterday", "yesterday"),
                  ("This week", "current-week"), ("This month", "current-month"),
                  ("Last month", "prev-month"), ("Custom range", "custom"))
#: Accepted ways of writing a day in the boxes (ISO first, the form they show).
DAY_FORMATS = ("%Y-%m-%d", "%d %b %Y", "%d %B %Y")


def parse_day(text: str | None) -> date | None:
    """The day written as "2026-11-01" or "1 Nov 2026"; None if it is neither."""
    for form in DAY_FORMATS:
        try:
            return datetime.strptime((text or "").strip(), form).date()
        except ValueError:
            continue
    return None


def day_box(description: str, day: date) -> widgets.Text:
    """A text box holding one day in ISO form, read when the user presses Enter or leaves."""
    return widgets.Text(value=day.isoformat(), description=description,
                        placeholder="YYYY-MM-DD", continuous_update=False,
                        layout=widgets.Layout(width="14em"))


class PeriodPicker:
    """Period dropdown and the custom range's first and last day."""

    def __init__(self, tz: ZoneInfo, today: date, query: Mapping[str, str],
                 default: str) -> None:
        self.tz = tz
        names = [name for _, name in PERIOD_OPTIONS]
        chosen = query.get("period", default)
        self.name = widgets.Dropdown(options=PERIOD_OPTIONS,
                                     value=chosen if chosen in names else default,
                                     description="Period")
        self.first = day_box("From", parse_day(query.get("from")) or today - timedelta(days=6))
        self.last = day_box("To", parse_day(query.get("to")) or today)
        self.name.observe(lambda _: self._enable_days(), names="value")
        self._enable_days()
        self.widgets: list[widgets.Widget] = [self.name, self.first, self.last]

    def _enable_days(self) -> None:
        custom = self.name.value == "custom"
        self.first.disabled = self.last.disabled = not custom

    def observe(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback`` whenever the chosen period may have changed (the day boxes
        count only for a custom range: for a named period they just show its days)."""
        self.name.observe(callback, names="value")
        for box in (self.first, self.last):
            box.observe(lambda change: callback(change) if self.name.value == "custom"
                        else None, names="value")

    def period(self, now: datetime) -> Period:
        """The chosen period as of ``now``; PeriodError for an impossible custom range.

        For a named period the day boxes are set to its first and last day.
        """
        if self.name.value != "custom":
            period = resolve_period(str(self.name.value), now, self.tz)
            self.first.value = period.first_day.isoformat()
            self.last.value = period.last_day.isoformat()
            return period
        first, last = parse_day(self.first.value), parse_day(self.last.value)
        if first is None or last is None:
            raise PeriodError("write both days of the custom range as YYYY-MM-DD, "
                              "e.g. 2026-11-01")
        return custom_period(first, last, self.tz)


def describe(period: Period) -> str:
    """E.g. "This week (2026-11-23 to 2026-11-27)"."""
    if period.first_day == period.last_day:
        return f"{period.title} ({period.first_day.isoformat()})"
    return f"{period.title} ({period.first_day.isoformat()} to {period.last_day.isoformat()})"
