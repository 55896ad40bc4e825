"""Half-hour slots of a local day: labels, boundaries and locating a packet's interval.

A day has 48 half-hour intervals. Slot ``i`` covers local ``[i*30 min, (i+1)*30 min)``
and is labelled with the time its packet is sent, one minute after it ends: slot 0
is ``"00:31"``, slot 46 is ``"23:31"`` and slot 47 (23:30-24:00) is ``"00:01"``, sent
just after midnight and filed under the day it measures.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

SLOTS_PER_DAY = 48
SLOT_MINUTES = 30
#: A packet is sent this long after the end of the interval it measures.
SEND_DELAY = timedelta(minutes=1)


class SlotError(ValueError):
    """A timestamp that does not fall near a half-hour send time."""


def slot_label(slot: int) -> str:
    """The seed's label for ``slot``: its send time ("00:31" ... "23:31", "00:01")."""
    minutes = ((slot + 1) * SLOT_MINUTES + 1) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


#: Labels of all slots, in slot order.
SLOT_LABELS: tuple[str, ...] = tuple(slot_label(slot) for slot in range(SLOTS_PER_DAY))
_SLOT_OF_LABEL = {label: slot for slot, label in enumerate(SLOT_LABELS)}


def slot_of_label(label: str) -> int:
    """The slot a seed label names; raises KeyError for anything else."""
    return _SLOT_OF_LABEL[label]


def interval_start(day: date, slot: int, tz: tzinfo) -> datetime:
    """Timezone-aware start of ``slot`` on local ``day``."""
    return datetime.combine(day, time(), tz) + timedelta(minutes=slot * SLOT_MINUTES)


def locate_interval(timestamp: datetime, tz: tzinfo, drift: timedelta) -> tuple[date, int]:
    """The (local day, slot) of the half hour a packet sent at ``timestamp`` measures.

    The timestamp must lie within ``drift`` of a send time (hh:01 or hh:31 local).
    """
    local = timestamp.astimezone(tz).replace(tzinfo=None) - SEND_DELAY
    midnight = datetime.combine(local.date(), time())
    minutes = (local - midnight).total_seconds() / 60
    boundary = round(minutes / SLOT_MINUTES)
    offset = abs(minutes - boundary * SLOT_MINUTES)
    if offset > drift.total_seconds() / 60:
        raise SlotError(
            f"timestamp is {offset:.0f} minutes away from a send time (hh:01 or hh:31);"
            f" at most {drift.total_seconds() / 60:.0f} are allowed"
        )
    if boundary == 0:
        return local.date() - timedelta(days=1), SLOTS_PER_DAY - 1
    return local.date(), boundary - 1


def local_day(moment: datetime, tz: tzinfo) -> date:
    """The utility's calendar day at instant ``moment``."""
    return moment.astimezone(tz).date()


def slots_elapsed(day: date, now: datetime, tz: tzinfo) -> int:
    """How many slots of ``day`` have been sent by ``now`` (0..48)."""
    sent = 0
    for slot in range(SLOTS_PER_DAY):
        send_time = interval_start(day, slot, tz) + timedelta(minutes=SLOT_MINUTES) + SEND_DELAY
        if send_time <= now:
            sent = slot + 1
    return sent


def first_offset_change(tz: tzinfo, start: datetime, years: int = 10) -> datetime | None:
    """The first day (noon UTC) within ``years`` of ``start`` on which ``tz``'s UTC offset
    differs from the day before, or None: only a zone without changes keeps 48 half hours
    in every day."""
    noon = start.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    previous = noon.astimezone(tz).utcoffset()
    for days in range(1, years * 366):
        moment = noon + timedelta(days=days)
        offset = moment.astimezone(tz).utcoffset()
        if offset != previous:
            return moment
        previous = offset
    return None
