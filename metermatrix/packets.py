"""Parse and validate a meter packet (seed 1.1): pure, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import orjson

from metermatrix.slots import SlotError, locate_interval

#: Largest request body a meter may send [bytes].
MAX_BODY_BYTES = 64 * 1024
FIELDS = frozenset({"id", "timestamp", "reading_kWh"})
MAX_METER_ID = 999_999_999


class PacketError(ValueError):
    """A packet the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Packet:
    """One validated half-hour reading, filed under its local day and slot."""

    meter_id: int
    timestamp: datetime
    energy_wh: int
    day: date
    slot: int


@dataclass(frozen=True, slots=True)
class PacketRules:
    """The limits a packet is checked against (built once from Settings)."""

    tz: tzinfo
    max_reading_wh: int
    late: timedelta = timedelta(days=7)
    future: timedelta = timedelta(minutes=5)
    drift: timedelta = timedelta(minutes=10)


def decode_body(body: bytes) -> dict[str, object]:
    """The packet's JSON object; PacketError for a body that is not one."""
    if len(body) > MAX_BODY_BYTES:
        raise PacketError(f"body is larger than {MAX_BODY_BYTES} bytes", status=413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise PacketError(f"body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise PacketError("body must be a JSON object with id, timestamp and reading_kWh")
    missing = FIELDS - data.keys()
    if missing:
        raise PacketError(f"missing field(s): {', '.join(sorted(missing))}")
    extra = data.keys() - FIELDS
    if extra:
        raise PacketError(f"unexpected field(s): {', '.join(sorted(extra))}")
    return data


def parse_meter_id(value: object) -> int:
    """The meter id: a positive integer of at most 9 digits."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_METER_ID:
        raise PacketError("id must be a positive integer of at most 9 digits")
    return value


def parse_timestamp(value: object, now: datetime, rules: PacketRules) -> datetime:
    """The send instant: ISO 8601 with a zone, not in the future, not too old."""
    if not isinstance(value, str):
        raise PacketError("timestamp must be an ISO 8601 string such as 2025-02-08T00:31:00Z")
    try:
        timestamp = datetime.fromisoformat(value)
    except ValueError:
        raise PacketError(f"timestamp {value!r} is not ISO 8601") from None
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise PacketError("timestamp must include a time zone (Z or +08:00)")
    if timestamp > now + rules.future:
        raise PacketError(f"timestamp is more than {rules.future} ahead of the server clock")
    if timestamp < now - rules.late:
        raise PacketError(f"timestamp is older than the {rules.late.days}-day acceptance window")
    return timestamp


def parse_energy_wh(value: object, rules: PacketRules) -> int:
    """The reading in integer watt-hours [Wh] from kWh; finite, >= 0, <= the ceiling."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PacketError("reading_kWh must be a number")
    if not math.isfinite(value):
        raise PacketError("reading_kWh must be a finite number")
    if value < 0:
        raise PacketError("reading_kWh must not be negative")
    if value * 1000 >= rules.max_reading_wh + 0.5:  # before round(): 1e308 would overflow
        raise PacketError(
            f"reading_kWh {value} is above the plausibility ceiling of"
            f" {rules.max_reading_wh / 1000:g} kWh per half hour"
        )
    return round(value * 1000)


def parse_packet(data: dict[str, object], now: datetime, rules: PacketRules) -> Packet:
    """Validate a decoded packet and locate the half hour it measures."""
    meter_id = parse_meter_id(data["id"])
    timestamp = parse_timestamp(data["timestamp"], now, rules)
    energy_wh = parse_energy_wh(data["reading_kWh"], rules)
    try:
        day, slot = locate_interval(timestamp, rules.tz, rules.drift)
    except SlotError as error:
        raise PacketError(str(error)) from None
    return Packet(meter_id, timestamp, energy_wh, day, slot)
