"""Head-end batches: many seed packets in one body, validated line by line (pure, no I/O).

A head-end system forwards the readings of many meters as newline-delimited JSON, one
seed 1.1 packet a line, signed as a whole with its own key. Each line is checked exactly
as ``POST /meter`` checks a packet; timestamps repeat across a batch, so each distinct
one is parsed and located once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson

from metermatrix.packets import (
    FIELDS,
    Packet,
    PacketError,
    PacketRules,
    parse_energy_wh,
    parse_meter_id,
    parse_timestamp,
)
from metermatrix.slots import SlotError, locate_interval

#: Largest batch body [bytes] and most lines in one batch.
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_BATCH_LINES = 500_000
HEADEND_HEADER = "X-Headend"
HEADEND_SIGNATURE_HEADER = "X-Headend-Signature"


def headend_key(fleet_key: bytes, name: str) -> bytes:
    """A head-end system's key: HMAC-SHA256(fleet secret, "headend:" + name)."""
    return hmac.new(fleet_key, f"headend:{name}".encode(), hashlib.sha256).digest()


def verify_headend(fleet_key: bytes, name: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the head-end's hex HMAC-SHA256 of the raw ``body``."""
    expected = hmac.new(headend_key(fleet_key, name), body, hashlib.sha256).hexdigest()
    supplied = signature.strip().lower()
    return supplied.isascii() and hmac.compare_digest(expected, supplied)


@dataclass
class ParsedBatch:
    """The valid packets of a batch with their line numbers, and the refused lines."""

    packets: list[Packet] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def parse_batch(body: bytes, now: datetime, rules: PacketRules) -> ParsedBatch:
    """Validate every line of an NDJSON body; PacketError when it is not NDJSON at all."""
    if len(body) > MAX_BATCH_BYTES:
        raise PacketError(f"batch is larger than {MAX_BATCH_BYTES} bytes", status=413)
    lines = body.split(b"\n")
    if len(lines) > MAX_BATCH_LINES + 1:
        raise PacketError(f"batch has more than {MAX_BATCH_LINES} lines", status=413)
    parsed = ParsedBatch()
    located: dict[str, tuple[datetime, date, int] | str] = {}
    objects = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            parsed.errors.append((number, f"line is not valid JSON: {error}"))
            continue
        objects += 1
        try:
            parsed.packets.append(_packet(data, now, rules, located))
            parsed.lines.append(number)
        except PacketError as error:
            parsed.errors.append((number, str(error)))
    if objects == 0:
        raise PacketError("body is not newline-delimited JSON packets, one per line")
    return parsed


def _packet(data: object, now: datetime, rules: PacketRules,
            located: dict[str, tuple[datetime, date, int] | str]) -> Packet:
    if not isinstance(data, dict):
        raise PacketError("line must be a JSON object with id, timestamp and reading_kWh")
    if data.keys() != FIELDS:
        missing, extra = FIELDS - data.keys(), data.keys() - FIELDS
        if missing:
            raise PacketError(f"missing field(s): {', '.join(sorted(missing))}")
        raise PacketError(f"unexpected field(s): {', '.join(sorted(extra))}")
    meter_id = parse_meter_id(data["id"])
    stamp = data["timestamp"]
    where = located.get(stamp) if isinstance(stamp, str) else None
    if where is None:
        where = _locate(stamp, now, rules)
        if isinstance(stamp, str):
            located[stamp] = where
    if isinstance(where, str):
        raise PacketError(where)
    energy_wh = parse_energy_wh(data["reading_kWh"], rules)
    timestamp, day, slot = where
    return Packet(meter_id, timestamp, energy_wh, day, slot)


def _locate(stamp: object, now: datetime, rules: PacketRules
            ) -> tuple[datetime, date, int] | str:
    """(timestamp, day, slot) of a timestamp, or the error message it gets."""
    try:
        timestamp = parse_timestamp(stamp, now, rules)
        day, slot = locate_interval(timestamp, rules.tz, rules.drift)
    except PacketError as error:
        return str(error)
    except SlotError as error:
        return str(error)
    return timestamp, day, slot
