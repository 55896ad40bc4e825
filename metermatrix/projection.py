"""This month's projected bill: the month so far plus the resident's usual day for the rest.

Every half hour of the month that has no reading (still to come, or never received) is
counted at the resident's usual half hour: the average of their complete days (48
readings) over the ``HISTORY_DAYS`` days before today, divided by 48.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import numpy as np

from metermatrix.periods import custom_period
from metermatrix.queries import daily
from metermatrix.slots import SLOTS_PER_DAY, local_day
from metermatrix.storage import Storage

HISTORY_DAYS = 28
METHOD = ("Expected month-end: your readings so far this month, plus every half hour still to "
          f"come or without a reading at your usual half hour (the average of your complete "
          f"days over the last {HISTORY_DAYS} days, divided by 48).")


@dataclass(frozen=True)
class MonthProjection:
    """The month so far and its expected end [kWh]."""

    so_far_kwh: float
    expected_kwh: float
    usual_day_kwh: float
    complete_days: int  # the complete days the usual day is the average of
    half_hours_estimated: int

    def as_record(self, tariff_sgd_per_kwh: float) -> dict[str, object]:
        """The projection for the JSON API."""
        return {"so_far_kwh": round(self.so_far_kwh, 3),
                "expected_kwh": round(self.expected_kwh, 3),
                "expected_cost_sgd": round(self.expected_kwh * tariff_sgd_per_kwh, 2),
                "usual_day_kwh": round(self.usual_day_kwh, 3),
                "complete_days": self.complete_days,
                "half_hours_estimated": self.half_hours_estimated, "method": METHOD}


def project_month(storage: Storage, meter_id: int, now: datetime, tz: tzinfo
                  ) -> MonthProjection | None:
    """The meter's expected consumption for the month of ``now``; None without a usual day."""
    today = local_day(now, tz)
    history = daily(storage, [meter_id], custom_period(
        today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1), tz), now)
    complete = history[history["readings"] >= SLOTS_PER_DAY]["energy_kwh"].to_numpy()
    if len(complete) == 0:
        return None
    usual_day_kwh = float(complete.mean())
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    month = daily(storage, [meter_id], custom_period(today.replace(day=1), last, tz), now)
    energy = month["energy_kwh"].to_numpy(dtype=np.float64)
    so_far_kwh = float(np.nansum(energy))
    reported = np.minimum(month["readings"].to_numpy(dtype=np.int64), SLOTS_PER_DAY)
    estimated = int((SLOTS_PER_DAY - reported).sum())
    expected_kwh = so_far_kwh + estimated * usual_day_kwh / SLOTS_PER_DAY
    return MonthProjection(so_far_kwh, expected_kwh if not math.isnan(expected_kwh) else 0.0,
                           usual_day_kwh, len(complete), estimated)
