"""Half-hour slots: labels, boundaries in the utility's zone, locating a packet's interval."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from metermatrix.slots import (
    SLOT_LABELS,
    SLOTS_PER_DAY,
    SlotError,
    interval_start,
    local_day,
    locate_interval,
    slot_label,
    slot_of_label,
    slots_elapsed,
)

UTC_ZONE = ZoneInfo("UTC")
SGT = ZoneInfo("Asia/Singapore")
DRIFT = timedelta(minutes=10)


def test_a_day_has_48_slots_labelled_by_send_time() -> None:
    assert SLOTS_PER_DAY == len(SLOT_LABELS) == len(set(SLOT_LABELS)) == 48
    assert SLOT_LABELS[:3] == ("00:31", "01:01", "01:31")
    assert SLOT_LABELS[46] == "23:31"
    assert SLOT_LABELS[47] == "00:01"


@pytest.mark.parametrize("slot", range(48))
def test_label_and_slot_round_trip(slot: int) -> None:
    assert slot_of_label(slot_label(slot)) == slot


@pytest.mark.parametrize("label", ["00:30", "24:01", "0:31", "", "00:31 "])
def test_unknown_label_raises_key_error(label: str) -> None:
    with pytest.raises(KeyError):
        slot_of_label(label)


def test_interval_start_is_aware_and_half_hourly() -> None:
    assert interval_start(date(2025, 2, 8), 0, UTC_ZONE) == datetime(2025, 2, 8, tzinfo=UTC)
    assert interval_start(date(2025, 2, 8), 47, UTC_ZONE) == datetime(2025, 2, 8, 23, 30,
                                                                       tzinfo=UTC)
    assert interval_start(date(2025, 2, 8), 0, SGT) == datetime(2025, 2, 7, 16, tzinfo=UTC)


@pytest.mark.parametrize("slot", range(48))
def test_packet_sent_at_its_label_is_filed_under_its_slot(slot: int) -> None:
    day = date(2025, 2, 8)
    sent = interval_start(day, slot, UTC_ZONE) + timedelta(minutes=31)
    assert locate_interval(sent, UTC_ZONE, DRIFT) == (day, slot)


@pytest.mark.parametrize("slot", [0, 1, 30, 46, 47])
def test_singapore_slots_are_located_in_local_time(slot: int) -> None:
    day = date(2025, 2, 8)
    sent = interval_start(day, slot, SGT) + timedelta(minutes=31)
    assert locate_interval(sent.astimezone(UTC), SGT, DRIFT) == (day, slot)


def test_00_01_packet_belongs_to_the_day_that_just_ended() -> None:
    sent = datetime(2025, 2, 9, 0, 1, tzinfo=UTC)
    assert locate_interval(sent, UTC_ZONE, DRIFT) == (date(2025, 2, 8), 47)


def test_singapore_midnight_is_16_00_utc() -> None:
    assert locate_interval(datetime(2025, 2, 8, 16, 1, tzinfo=UTC), SGT, DRIFT) == (
        date(2025, 2, 8), 47)
    assert locate_interval(datetime(2025, 2, 8, 16, 31, tzinfo=UTC), SGT, DRIFT) == (
        date(2025, 2, 9), 0)


@pytest.mark.parametrize("offset_minutes", [-10, -3, 0, 4, 10])
def test_drift_within_tolerance_is_absorbed(offset_minutes: int) -> None:
    sent = datetime(2025, 2, 8, 12, 31, tzinfo=UTC) + timedelta(minutes=offset_minutes)
    assert locate_interval(sent, UTC_ZONE, DRIFT) == (date(2025, 2, 8), 24)


@pytest.mark.parametrize("minute", [12, 15, 16, 20, 42, 46, 50])
def test_timestamp_between_send_times_raises(minute: int) -> None:
    with pytest.raises(SlotError, match="away from a send time"):
        locate_interval(datetime(2025, 2, 8, 12, minute, tzinfo=UTC), UTC_ZONE, DRIFT)


def test_drift_before_midnight_send_time_still_files_slot_47() -> None:
    sent = datetime(2025, 2, 8, 23, 55, tzinfo=UTC)  # an early 00:01 packet
    assert locate_interval(sent, UTC_ZONE, DRIFT) == (date(2025, 2, 8), 47)


def test_local_day_uses_the_zone() -> None:
    moment = datetime(2025, 2, 8, 17, 0, tzinfo=UTC)
    assert local_day(moment, UTC_ZONE) == date(2025, 2, 8)
    assert local_day(moment, SGT) == date(2025, 2, 9)


def test_slots_elapsed_counts_send_times_passed() -> None:
    day = date(2025, 2, 8)
    assert slots_elapsed(day, datetime(2025, 2, 8, 0, 30, tzinfo=UTC), UTC_ZONE) == 0
    assert slots_elapsed(day, datetime(2025, 2, 8, 0, 31, tzinfo=UTC), UTC_ZONE) == 1
    assert slots_elapsed(day, datetime(2025, 2, 8, 23, 59, tzinfo=UTC), UTC_ZONE) == 47
    assert slots_elapsed(day, datetime(2025, 2, 9, 0, 1, tzinfo=UTC), UTC_ZONE) == 48
    assert slots_elapsed(day, datetime(2025, 2, 8, 16, 31, tzinfo=UTC), SGT) == 48
