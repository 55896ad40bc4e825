"""Whether the readings still missing from a period can arrive late, in a sentence.

A meter may send a reading up to ``late_days`` days after its half hour (the packet
rules' acceptance window); a missing reading older than that will not come any more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from metermatrix.queries import MeterConsumption
from metermatrix.slots import SEND_DELAY, SLOT_MINUTES


def latest_send_times(result: MeterConsumption) -> list[datetime]:
    """When the last reading of each missing interval was due to be sent (tz-aware)."""
    length = (timedelta(minutes=SLOT_MINUTES) if result.period.resolution == "half-hour"
              else timedelta(days=1))
    missing = result.rows["status"].to_numpy() == "missing"
    return [stamp.to_pydatetime() + length + SEND_DELAY
            for stamp in result.rows["start"][missing]]


def late_readings_note(result: MeterConsumption, now: datetime, late_days: int) -> str:
    """What the missing-readings banner says about late readings still coming."""
    window = timedelta(days=late_days)
    sends = latest_send_times(result)
    open_count = sum(send >= now - window for send in sends)
    if not sends:
        return ""
    if open_count == len(sends):
        return f"A meter can still send a late reading for up to {late_days} days."
    if open_count == 0:
        return (f"These are more than {late_days} days old, the longest a meter may send a "
                "late reading, so they will not arrive any more.")
    return (f"{open_count} of them are less than {late_days} days old and can still arrive "
            "late; the others are older and will not.")
