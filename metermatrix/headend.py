"""The simulator as a head-end system: whole days replayed through POST /meter/batch.

Each batch holds every due half hour of a run of meters (meter-major, as a head-end's
daily file is), signed with the head-end's key; every line the server acknowledges goes
into the ledger exactly as single packets do.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
from tqdm import tqdm

from metermatrix.batches import HEADEND_HEADER, HEADEND_SIGNATURE_HEADER
from metermatrix.simulation import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    EnergyCache,
    Ledger,
    MeterClient,
    ServerStatus,
    Tally,
    _sleep_unless,
    format_timestamp,
    send_time,
)
from metermatrix.slots import SLOT_LABELS

#: The name the simulator signs its batches with.
HEADEND_NAME = "simulator"


@cache
def _texts() -> tuple[list[str], list[str]]:
    """Each reading [Wh] as the packet writes it (kWh, 3 decimals) and as the ledger does."""
    return ([f"{wh / 1000:.3f}" for wh in range(1 << 16)],
            [f"{wh / 1000},\"energy_wh\":{wh}," for wh in range(1 << 16)])


def batch_body(meter_ids: Sequence[int], stamps: Sequence[str],
               energy_wh: np.ndarray) -> bytes:
    """NDJSON of every (meter, slot) of a block, meter-major: a line per packet."""
    kwh = _texts()[0]
    heads = [f'{{"id": {meter_id}, "timestamp": "' for meter_id in meter_ids]
    middles = [f'{stamp}", "reading_kWh": ' for stamp in stamps]
    lines = [head + middle + kwh[wh] + "}"
             for head, row in zip(heads, energy_wh.tolist(), strict=True)
             for middle, wh in zip(middles, row, strict=True)]
    return "\n".join(lines).encode("ascii")


async def post_batch(client: MeterClient, key: bytes, body: bytes
                     ) -> tuple[int, dict[str, object]]:
    """POST a batch until the server answers something other than 503 or unreachable."""
    headers = {HEADEND_HEADER: HEADEND_NAME, "Content-Type": "application/x-ndjson",
               HEADEND_SIGNATURE_HEADER: hmac.new(key, body, hashlib.sha256).hexdigest()}
    code, answer = 599, dict[str, object]()
    for attempt in range(MAX_ATTEMPTS):
        code, answer = await client.fetch("/meter/batch", body, headers)
        if code not in (503, 599) or client.stop.is_set():
            break
        await _sleep_unless(client.stop, min(0.5 * 2**attempt, MAX_BACKOFF_S)
                            * random.uniform(0.5, 1.5))
    return code, answer


@dataclass(frozen=True)
class Block:
    """One batch: a run of meters, each with every due half hour of one day (meter-major)."""

    meter_ids: list[int]
    day: date
    slots: list[int]
    stamps: list[str]
    #: (meters, slots) readings [Wh].
    energy_wh: np.ndarray

    def body(self) -> bytes:
        """The batch's NDJSON."""
        return batch_body(self.meter_ids, self.stamps, self.energy_wh)

    def ledger_lines(self, status: str, skip: set[int]) -> bytes:
        """Ledger lines of every line but those numbered in ``skip`` (1-based)."""
        day, per = self.day.isoformat(), len(self.slots)
        tails = [f'"status":"{status}","day":"{day}","slot":"{SLOT_LABELS[slot]}"}}\n'
                 for slot in self.slots]
        heads = [f'{{"id":{meter_id},"timestamp":"' for meter_id in self.meter_ids]
        middles = [f'{stamp}","reading_kWh":' for stamp in self.stamps]
        texts = _texts()[1]
        lines = [head + middle + texts[wh] + tail
                 for row, (head, readings) in enumerate(
                     zip(heads, self.energy_wh.tolist(), strict=True))
                 for column, (middle, tail, wh) in enumerate(
                     zip(middles, tails, readings, strict=True))
                 if not skip or row * per + column + 1 not in skip]
        return "".join(lines).encode("ascii")


def record_batch(block: Block, code: int, answer: dict[str, object], tally: Tally,
                 ledger: Ledger) -> None:
    """Count a batch's answer and ledger every line it acknowledged."""
    lines = len(block.meter_ids) * len(block.slots)
    if code != 200:
        for _ in range(lines):
            tally.sent += 1
            (tally.give_up if code in (503, 599) else tally.refuse)(
                code, str(answer.get("error", answer)))
        return
    errors = answer.get("errors")
    failed = {int(item["line"]): str(item["error"]) for item in errors
              } if isinstance(errors, list) else {}
    duplicates = answer.get("duplicate", 0)
    duplicates = int(duplicates) if isinstance(duplicates, int) else 0
    tally.sent += lines
    tally.duplicate += duplicates
    for message in failed.values():
        tally.refuse(409 if "different reading" in message else 400, message)
    ledger.write(block.ledger_lines("stored" if not duplicates else "stored-or-duplicate",
                                    set(failed)))
    tally.stored += lines - len(failed) - duplicates


async def replay_bulk(days: Sequence[date], slots: Sequence[tuple[date, int]],
                      status: ServerStatus, energy: EnergyCache, client: MeterClient,
                      key: bytes, tally: Tally, ledger: Ledger, batch_size: int,
                      progress: tqdm[None] | None = None) -> None:
    """Send the due slots of ``days`` in batches of about ``batch_size`` lines, two in flight."""
    in_flight: set[asyncio.Task[None]] = set()

    async def send(block: Block) -> None:
        code, answer = await post_batch(client, key, block.body())
        record_batch(block, code, answer, tally, ledger)
        if progress is not None:
            progress.update(len(block.meter_ids) * len(block.slots))

    for day in days:
        day_slots = [slot for d, slot in slots if d == day]
        if not day_slots:
            continue
        stamps = [format_timestamp(send_time(day, slot, status.tz)) for slot in day_slots]
        readings = energy.of_day(day)[:, day_slots]
        per = max(1, batch_size // len(day_slots))
        for start in range(0, len(energy.meter_ids), per):
            if client.stop.is_set():
                break
            block = Block(energy.meter_ids[start:start + per].tolist(), day, day_slots, stamps,
                          readings[start:start + per])
            while len(in_flight) >= 2:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight.add(asyncio.create_task(send(block)))
    if in_flight:
        await asyncio.gather(*in_flight)
