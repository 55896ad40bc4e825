"""Packet validation (seed 1.1): every kind of bad packet is refused with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from metermatrix.packets import (
    MAX_BODY_BYTES,
    Packet,
    PacketError,
    PacketRules,
    decode_body,
    parse_energy_wh,
    parse_meter_id,
    parse_packet,
    parse_timestamp,
)

NOW = datetime(2025, 2, 8, 0, 40, tzinfo=UTC)
RULES = PacketRules(tz=ZoneInfo("UTC"), max_reading_wh=50_000)
SGT_RULES = PacketRules(tz=ZoneInfo("Asia/Singapore"), max_reading_wh=50_000)


def body(**fields: object) -> bytes:
    packet: dict[str, object] = {"id": 999999999, "timestamp": "2025-02-08T00:31:00Z",
                                 "reading_kWh": 5.5}
    packet.update(fields)
    return orjson.dumps(packet)


def refusal(call, *args) -> PacketError:
    with pytest.raises(PacketError) as caught:
        call(*args)
    return caught.value


def test_seed_example_packet_is_filed_under_slot_00_31() -> None:
    packet = parse_packet(decode_body(body()), NOW, RULES)
    assert packet == Packet(999999999, datetime(2025, 2, 8, 0, 31, tzinfo=UTC), 5500,
                            date(2025, 2, 8), 0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{id: 1}", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b'{"id": 9, "timestamp": "2025-02-08T00:31:00Z"}', "missing field(s): reading_kWh"),
        (b"{}", "missing field(s): id, reading_kWh, timestamp"),
        (body(extra=1), "unexpected field(s): extra"),
        (body(reading_kwh=1), "unexpected field(s): reading_kwh"),
    ],
)
def test_body_that_is_not_a_packet_object_is_refused(raw: bytes, reason: str) -> None:
    error = refusal(decode_body, raw)
    assert reason in str(error)
    assert error.status == 400


def test_body_over_64_kib_is_refused_with_413() -> None:
    raw = body(id=1) + b" " * (MAX_BODY_BYTES)
    error = refusal(decode_body, raw)
    assert error.status == 413
    assert "larger than" in str(error)


def test_body_of_exactly_64_kib_is_read() -> None:
    raw = body()
    raw = raw + b" " * (MAX_BODY_BYTES - len(raw))
    assert decode_body(raw)["id"] == 999999999


@pytest.mark.parametrize("meter_id", [1, 42, 555555555, 999999999])
def test_positive_ids_of_up_to_nine_digits_are_accepted(meter_id: int) -> None:
    assert parse_meter_id(meter_id) == meter_id


@pytest.mark.parametrize(
    "value", [0, -1, -999999999, 1_000_000_000, True, False, 999999999.0, "999999999", None, [1]]
)
def test_id_that_is_not_a_positive_nine_digit_integer_is_refused(value: object) -> None:
    assert "id must be a positive integer" in str(refusal(parse_meter_id, value))


@pytest.mark.parametrize(
    "text", ["2025-02-08T00:31:00Z", "2025-02-08T08:31:00+08:00", "2025-02-08T00:31:00.250+00:00"]
)
def test_iso_timestamps_with_a_zone_are_accepted(text: str) -> None:
    assert parse_timestamp(text, NOW, RULES) == datetime(2025, 2, 8, 0, 31, tzinfo=UTC) + (
        timedelta(milliseconds=250) if ".250" in text else timedelta()
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "not ISO 8601"),
        ("08/02/2025 00:31", "not ISO 8601"),
        ("2025-02-30T00:31:00Z", "not ISO 8601"),
        ("", "not ISO 8601"),
        (1738974660, "must be an ISO 8601 string"),
        (None, "must be an ISO 8601 string"),
        ("2025-02-08T00:31:00", "must include a time zone"),
        ("2025-02-08", "must include a time zone"),
    ],
)
def test_timestamp_that_is_not_iso_with_a_zone_is_refused(value: object, reason: str) -> None:
    assert reason in str(refusal(parse_timestamp, value, NOW, RULES))


def test_timestamp_up_to_five_minutes_ahead_is_accepted_and_beyond_refused() -> None:
    assert parse_timestamp("2025-02-08T00:45:00Z", NOW, RULES)
    error = refusal(parse_timestamp, "2025-02-08T00:45:01Z", NOW, RULES)
    assert "ahead of the server clock" in str(error)


def test_timestamp_older_than_the_late_window_is_refused() -> None:
    assert parse_timestamp("2025-02-01T00:40:00Z", NOW, RULES)
    error = refusal(parse_timestamp, "2025-02-01T00:39:59Z", NOW, RULES)
    assert "older than the 7-day acceptance window" in str(error)


def test_late_window_follows_the_rules() -> None:
    rules = PacketRules(tz=ZoneInfo("UTC"), max_reading_wh=50_000, late=timedelta(days=2))
    error = refusal(parse_timestamp, "2025-02-05T00:31:00Z", NOW, rules)
    assert "2-day" in str(error)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59"])
def test_extreme_dates_are_refused_not_crashed_on(text: str) -> None:
    refusal(parse_timestamp, text, NOW, RULES)


@pytest.mark.parametrize(
    ("kwh", "energy_wh"), [(0, 0), (0.0, 0), (5.5, 5500), (0.0004, 0), (1.2345, 1234), (50, 50_000)]
)
def test_reading_is_kept_in_integer_watt_hours(kwh: float, energy_wh: int) -> None:
    assert parse_energy_wh(kwh, RULES) == energy_wh


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("5.5", "must be a number"),
        ("NaN", "must be a number"),
        (None, "must be a number"),
        (True, "must be a number"),
        ([5.5], "must be a number"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-0.001, "must not be negative"),
        (-5, "must not be negative"),
        (50.001, "plausibility ceiling of 50 kWh"),
        (10**18, "plausibility ceiling"),
        (1e308, "plausibility ceiling"),
        (1.7976931348623157e308, "plausibility ceiling"),
    ],
)
def test_reading_that_is_not_a_plausible_number_is_refused(value: object, reason: str) -> None:
    assert reason in str(refusal(parse_energy_wh, value, RULES))


def test_reading_above_a_lower_configured_ceiling_is_refused() -> None:
    rules = PacketRules(tz=ZoneInfo("UTC"), max_reading_wh=10_000)
    assert parse_energy_wh(10, rules) == 10_000
    assert "ceiling of 10 kWh" in str(refusal(parse_energy_wh, 10.001, rules))


@pytest.mark.parametrize("minute", [12, 16, 20])
def test_timestamp_far_from_a_send_time_is_refused(minute: int) -> None:
    text = f"2025-02-08T00:{minute:02d}:00Z"
    error = refusal(parse_packet, orjson.loads(body(timestamp=text)), NOW, RULES)
    assert "away from a send time" in str(error)


def test_drifting_meter_clock_is_filed_under_the_nearest_slot() -> None:
    early = parse_packet(orjson.loads(body(timestamp="2025-02-08T00:22:00Z")), NOW, RULES)
    late = parse_packet(orjson.loads(body(timestamp="2025-02-08T00:40:00Z")), NOW, RULES)
    assert (early.day, early.slot) == (late.day, late.slot) == (date(2025, 2, 8), 0)


def test_midnight_packet_belongs_to_the_previous_day_slot_47() -> None:
    packet = parse_packet(orjson.loads(body(timestamp="2025-02-08T00:01:00Z")), NOW, RULES)
    assert (packet.day, packet.slot) == (date(2025, 2, 7), 47)


def test_singapore_day_starts_at_16_00_utc() -> None:
    now = datetime(2025, 2, 8, 16, 40, tzinfo=UTC)
    midnight = parse_packet(orjson.loads(body(timestamp="2025-02-08T16:01:00Z")), now, SGT_RULES)
    first = parse_packet(orjson.loads(body(timestamp="2025-02-08T16:31:00Z")), now, SGT_RULES)
    assert (midnight.day, midnight.slot) == (date(2025, 2, 8), 47)
    assert (first.day, first.slot) == (date(2025, 2, 9), 0)


def test_reading_never_rounds_above_an_odd_ceiling() -> None:
    rules = PacketRules(tz=ZoneInfo("UTC"), max_reading_wh=1)
    assert parse_energy_wh(0.0014, rules) == 1
    refusal(parse_energy_wh, 0.0015, rules)


def test_meter_clock_ten_minutes_off_is_still_accepted() -> None:
    packet = parse_packet(orjson.loads(body(timestamp="2025-02-08T00:11:00Z")), NOW, RULES)
    assert (packet.day, packet.slot) == (date(2025, 2, 7), 47)
