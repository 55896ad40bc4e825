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

import numpy as np
import numpy.typing as npt
import orjson

from metermatrix.packets import (
    FIELDS,
    MAX_METER_ID,
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
    """The valid packets of a batch as columns, with their line numbers, and the refused lines.

    Row ``i`` of every column is one valid packet: its meter, reading [Wh], local day
    (``days[day_index[i]]``) and slot. Columns keep the order of the lines.
    """

    lines: npt.NDArray[np.int64]
    meter_ids: npt.NDArray[np.int64]
    energy_wh: npt.NDArray[np.int64]
    day_index: npt.NDArray[np.int64]
    slots: npt.NDArray[np.int64]
    days: list[date]
    errors: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


def parse_batch(body: bytes, now: datetime, rules: PacketRules) -> ParsedBatch:
    """Validate every line of an NDJSON body; PacketError when it is not NDJSON at all.

    Lines of the usual shape (an object of an integer id, a string timestamp and a
    number) are checked as columns; any other line, and any line a column check
    refuses, is checked alone by the rules of ``POST /meter`` for its exact message.
    """
    if len(body) > MAX_BATCH_BYTES:
        raise PacketError(f"batch is larger than {MAX_BATCH_BYTES} bytes", status=413)
    lines = body.split(b"\n")
    if len(lines) > MAX_BATCH_LINES + 1:
        raise PacketError(f"batch has more than {MAX_BATCH_LINES} lines", status=413)
    columns = _Columns()
    errors: list[tuple[int, str]] = []
    objects = 0
    for number, line in enumerate(lines, start=1):
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            if line.strip():
                errors.append((number, f"line is not valid JSON: {error}"))
            continue
        objects += 1
        columns.add(number, data)
    if objects == 0:
        raise PacketError("body is not newline-delimited JSON packets, one per line")
    return columns.validate(now, rules, errors)


class _Columns:
    """Lines of the usual shape gathered as columns; the others kept aside whole."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.ids: list[int] = []
        self.stamps: list[int] = []
        self.kwh: list[float] = []
        self.stamp_codes: dict[str, int] = {}
        self.odd: list[tuple[int, object]] = []

    def add(self, number: int, data: object) -> None:
        """Take one decoded line."""
        if type(data) is dict and data.keys() == FIELDS:
            meter_id, stamp, kwh = data["id"], data["timestamp"], data["reading_kWh"]
            if (type(meter_id) is int and 0 < meter_id <= MAX_METER_ID and type(stamp) is str
                    and (type(kwh) is float or (type(kwh) is int and -_EXACT < kwh < _EXACT))):
                self.numbers.append(number)
                self.ids.append(meter_id)
                self.stamps.append(self.stamp_codes.setdefault(stamp, len(self.stamp_codes)))
                self.kwh.append(kwh)
                return
        self.odd.append((number, data))

    def validate(self, now: datetime, rules: PacketRules,
                 errors: list[tuple[int, str]]) -> ParsedBatch:
        """The batch: column checks first, then each odd or refused line on its own."""
        days: list[date] = []
        located = [_locate(stamp, now, rules) for stamp in self.stamp_codes]
        stamp_day = np.array([-1 if isinstance(where, str) else _index(days, where[1])
                              for where in located] or [0], np.int64)
        stamp_slot = np.array([-1 if isinstance(where, str) else where[2]
                               for where in located] or [0], np.int64)
        codes = np.array(self.stamps, np.int64)
        kwh = np.array(self.kwh, np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = kwh * 1000
            good = ((stamp_day[codes] >= 0) & np.isfinite(kwh) & (kwh >= 0)
                    & (scaled < rules.max_reading_wh + 0.5))
        numbers = np.array(self.numbers, np.int64)
        parsed = ParsedBatch(numbers[good], np.array(self.ids, np.int64)[good],
                             np.rint(scaled[good]).astype(np.int64), stamp_day[codes[good]],
                             stamp_slot[codes[good]], days, errors)
        refused = np.flatnonzero(~good).tolist()
        stamps = list(self.stamp_codes)
        self.odd.extend((self.numbers[i], {"id": self.ids[i], "reading_kWh": self.kwh[i],
                                           "timestamp": stamps[self.stamps[i]]})
                        for i in refused)
        if self.odd:
            _add_odd(parsed, self.odd, now, rules)
        return parsed


#: Integers below this magnitude convert to float64 exactly.
_EXACT = 2**53


def _index(days: list[date], day: date) -> int:
    if day not in days:
        days.append(day)
    return days.index(day)


def _add_odd(parsed: ParsedBatch, odd: list[tuple[int, object]], now: datetime,
             rules: PacketRules) -> None:
    """Check lines one by one, as ``POST /meter`` would, and merge them in line order."""
    located: dict[str, tuple[datetime, date, int] | str] = {}
    extra: list[tuple[int, Packet]] = []
    for number, data in odd:
        try:
            extra.append((number, _packet(data, now, rules, located)))
        except PacketError as error:
            parsed.errors.append((number, str(error)))
    if not extra:
        return
    numbers = np.concatenate([parsed.lines, [number for number, _ in extra]])
    order = np.argsort(numbers, kind="stable")
    parsed.lines = numbers[order]
    parsed.meter_ids = np.concatenate([parsed.meter_ids, [p.meter_id for _, p in extra]])[order]
    parsed.energy_wh = np.concatenate([parsed.energy_wh, [p.energy_wh for _, p in extra]])[order]
    parsed.day_index = np.concatenate(
        [parsed.day_index, [_index(parsed.days, p.day) for _, p in extra]])[order]
    parsed.slots = np.concatenate([parsed.slots, [p.slot for _, p in extra]])[order]


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
