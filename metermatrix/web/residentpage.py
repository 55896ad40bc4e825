"""What every resident handler shares: meter ids in URLs, access, formatting."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import tornado.web

from metermatrix.packets import MAX_METER_ID
from metermatrix.periods import RESIDENT_PERIODS, Period
from metermatrix.web.base import BaseHandler

_DAY = timedelta(days=1)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ERRORS = {
    403: "You can only see the meter of the account you are logged in with.",
    404: "There is no such page. A meter ID has 9 digits, e.g. 999-999-999.",
}


def parse_meter_text(text: str, typed: bool = False) -> int | None:
    """A meter id ("999999999", "999-999-999", "999 999 999"), or None.

    ``typed``: entered in a form, where all nine digits are required (a typo guard);
    URLs may leave out leading zeros.
    """
    digits = text.strip().replace("-", "").replace(" ", "")
    if not digits.isascii() or not digits.isdigit() or not 0 < len(digits) <= 9:
        return None
    if typed and len(digits) != 9:
        return None
    meter_id = int(digits)
    return meter_id if 0 < meter_id <= MAX_METER_ID else None


def format_meter_id(meter_id: int) -> str:
    """A meter id as people read it: "999-999-999"."""
    digits = f"{meter_id:09d}"
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def mask_fin(fin_no: str | None) -> str:
    """A FIN with all but its last four characters hidden: "*****127I"."""
    if not fin_no:
        return "not given"
    return "*" * max(len(fin_no) - 4, 0) + fin_no[-4:]


def format_kwh(value: float, digits: int = 2) -> str:
    """Energy for people [kWh]: "12.35 kWh", or a dash when there is no value."""
    if math.isnan(value):
        return "\u2014"
    return f"{value:,.{digits}f} kWh"


def format_number(value: float, digits: int = 2) -> str:
    """A plain number for tables, or a dash when there is no value."""
    return "\u2014" if math.isnan(value) else f"{value:,.{digits}f}"


def format_sgd(value: float) -> str:
    """Money in Singapore dollars: "S$12.35", or a dash when there is no value."""
    return "\u2014" if math.isnan(value) else f"S${value:,.2f}"


def format_change(value: float, base: float) -> str:
    """``value`` against ``base`` as "12% more" / "3% less" / "the same"."""
    if not base or math.isnan(base) or math.isnan(value):
        return ""
    change = round((value - base) / base * 100)
    if change == 0:
        return "about the same"
    return f"{abs(change)}% {'more' if change > 0 else 'less'}"


def format_comparison(value: float, base: float, whom: str) -> str:
    """``value`` against ``whom``'s ``base``: "12% more than ...", "about the same as ..."."""
    change = format_change(value, base)
    if not change:
        return ""
    return f"{change} {'as' if change == 'about the same' else 'than'} {whom}"


def period_span(period: Period) -> str:
    """The dates and times a period covers, e.g. "Mon 23 Nov - Fri 27 Nov 2026"."""
    last = period.last_day
    if period.resolution == "half-hour" and period.end - period.start < _DAY:
        return f"{period.start:%a %d %b %Y, %H:%M}\u2013{period.end:%H:%M}"
    if period.first_day == last:
        return f"{period.start:%a %d %b %Y}"
    if period.first_day.day == 1 and (last + _DAY).day == 1 and (
            (period.first_day.year, period.first_day.month) == (last.year, last.month)):
        return f"{period.start:%B %Y}"
    return f"{period.start:%a %d %b} \u2013 {last:%a %d %b %Y}"


def period_title(name: str) -> str:
    """The page title of a named period ("current-week" -> "This week")."""
    return Period(name, _EPOCH, _EPOCH, "day").title


#: The residents' templates' helpers (the page's namespace, and a reader's, see
#: ``metermatrix.web.consumption.page_body``).
FORMATTERS: dict[str, Any] = {
    "kwh": format_kwh, "number": format_number, "sgd": format_sgd, "change": format_change,
    "compared": format_comparison, "mask_fin": mask_fin, "meter_label": format_meter_id,
    "span": period_span, "title": period_title, "resident_periods": RESIDENT_PERIODS,
}


@dataclass
class ResidentState:
    """What the residents' handlers share beyond the service (nothing at present: the
    region averages are kept by the reader processes, see ``metermatrix.readers``)."""


class ResidentPage(BaseHandler):
    """An HTML page of the residents' area."""

    def initialize(self, state: ResidentState) -> None:
        self.state = state

    @property
    def activation_key(self) -> bytes:
        """The secret the meters' activation codes are derived from."""
        key: bytes = self.application.settings["activation_key"]
        return key

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")  # personal data: no shared caches

    def own_meter(self, meter_text: str) -> int:
        """The meter id of the URL, if it is the logged-in resident's (else 404 / 403)."""
        meter_id = parse_meter_text(meter_text)
        if meter_id is None:
            raise tornado.web.HTTPError(404)
        if meter_id != self.resident_meter:
            raise tornado.web.HTTPError(403)
        return meter_id

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(FORMATTERS, user_meter=self.resident_meter,
                         late_days=self.service.settings.late_days)
        return namespace

    def error_message(self, status_code: int) -> str:
        return _ERRORS.get(status_code) or super().error_message(status_code)
