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
from datetime import date

import numpy as np
from tqdm import tqdm

from metermatrix.batches import HEADEND_HEADER, HEADEND_SIGNATURE_HEADER
from metermatrix.simulation import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    Delivery,
    EnergyCache,
    Ledger,
    MeterClient,
    ServerStatus,
    Tally,
    _sleep_unless,
    format_timestamp,
    send_time,
)

#: The name the simulator signs its batches with.
HEADEND_NAME = "simulator"


def batch_body(meter_ids: Sequence[int], stamps: Sequence[str],
               energy_wh: np.ndarray) -> bytes:
    """NDJSON of every (meter, slot) of a block, meter-major: a line per packet."""
    lines = [f'{{"id": {meter_id}, "timestamp": "{stamp}", "reading_kWh": {wh / 1000:.3f}}}'
             for meter_id, row in zip(meter_ids, energy_wh.tolist(), strict=True)
             for stamp, wh in zip(stamps, row, strict=True)]
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


def record_batch(deliveries: list[Delivery], code: int, answer: dict[str, object],
                 tally: Tally, ledger: Ledger) -> None:
    """Count a batch's answer and ledger every line it acknowledged."""
    if code != 200:
        for _ in deliveries:
            tally.sent += 1
            (tally.give_up if code in (503, 599) else tally.refuse)(
                code, str(answer.get("error", answer)))
        return
    errors = answer.get("errors")
    failed = {int(item["line"]): str(item["error"]) for item in errors
              } if isinstance(errors, list) else {}
    duplicates = answer.get("duplicate", 0)
    status = "stored" if not duplicates else "stored-or-duplicate"
    tally.sent += len(deliveries)
    tally.duplicate += int(duplicates) if isinstance(duplicates, int) else 0
    for line, delivery in enumerate(deliveries, start=1):
        if line in failed:
            tally.refuse(409 if "different reading" in failed[line] else 400, failed[line])
        else:
            ledger.record(delivery, status, {"date": delivery.day.isoformat()})
    tally.stored += len(deliveries) - len(failed) - (
        int(duplicates) if isinstance(duplicates, int) else 0)


async def replay_bulk(days: Sequence[date], slots: Sequence[tuple[date, int]],
                      status: ServerStatus, energy: EnergyCache, client: MeterClient,
                      key: bytes, tally: Tally, ledger: Ledger, batch_size: int,
                      progress: tqdm[None] | None = None) -> None:
    """Send the due slots of ``days`` in batches of about ``batch_size`` lines, two in flight."""
    in_flight: set[asyncio.Task[None]] = set()

    async def send(body: bytes, deliveries: list[Delivery]) -> None:
        code, answer = await post_batch(client, key, body)
        record_batch(deliveries, code, answer, tally, ledger)
        if progress is not None:
            progress.update(len(deliveries))

    for day in days:
        day_slots = [slot for d, slot in slots if d == day]
        if not day_slots:
            continue
        sent_at = [send_time(day, slot, status.tz) for slot in day_slots]
        stamps = [format_timestamp(moment) for moment in sent_at]
        readings = energy.of_day(day)[:, day_slots]
        per = max(1, batch_size // len(day_slots))
        for start in range(0, len(energy.meter_ids), per):
            if client.stop.is_set():
                break
            ids = energy.meter_ids[start:start + per].tolist()
            block = readings[start:start + per]
            body = batch_body(ids, stamps, block)
            deliveries = [Delivery(m, day, slot, at, wh)
                          for m, row in zip(ids, block.tolist(), strict=True)
                          for slot, at, wh in zip(day_slots, sent_at, row, strict=True)]
            while len(in_flight) >= 2:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight.add(asyncio.create_task(send(body, deliveries)))
    if in_flight:
        await asyncio.gather(*in_flight)

