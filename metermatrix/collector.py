"""Accepting readings (seed 2.1): today's store in front, the master database behind.

A reading of the open day is checked against today's store, put there at once and
acknowledged when its group commit returns; a reading of any other day (a late one,
or a ``00:01`` packet after the close) goes straight to the database, which decides.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from metermatrix.packets import Packet
from metermatrix.recovery import load_snapshot, snapshot_path
from metermatrix.slots import SLOT_LABELS
from metermatrix.storage import Outcome, Reading, Storage, StorageError
from metermatrix.today import TodayStore
from metermatrix.writer import ReadingWriter

log = logging.getLogger(__name__)


class NotStoredError(RuntimeError):
    """The reading could not be made durable; the meter should send it again."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What happened to a packet: stored, duplicate or conflict, and where it was filed."""

    outcome: Outcome
    packet: Packet
    stored_wh: int | None = None

    def as_json(self) -> dict[str, object]:
        """The /meter response body."""
        body: dict[str, object] = {
            "status": self.outcome,
            "meter": self.packet.meter_id,
            "date": self.packet.day.isoformat(),
            "slot": SLOT_LABELS[self.packet.slot],
            "reading_kWh": self.packet.energy_wh / 1000,
        }
        if self.outcome == "conflict":
            body["error"] = "this meter already sent a different reading for this half hour"
            body["stored_kWh"] = (self.stored_wh or 0) / 1000
        return body


class Collector:
    """Today's store and the writer, kept in step; the state the /meter handler uses."""

    def __init__(self, store: TodayStore, writer: ReadingWriter) -> None:
        self.store = store
        self.writer = writer

    async def accept(self, packet: Packet) -> Receipt:
        """File a validated packet; returns only once a stored reading is durable."""
        if packet.day != self.store.day:
            reading = Reading(packet.meter_id, packet.day, packet.slot, packet.energy_wh)
            try:
                outcome = await self.writer.store(reading)
            except StorageError as error:
                raise NotStoredError(str(error)) from error
            return Receipt(outcome, packet)
        existing = self.store.get(packet.meter_id, packet.slot)
        if existing is None:
            return await self._store_new(packet)
        if existing != packet.energy_wh:
            return Receipt("conflict", packet, existing)
        try:
            await self.writer.sync()
        except StorageError as error:
            raise NotStoredError(str(error)) from error
        if self.store.get(packet.meter_id, packet.slot) is None:
            raise NotStoredError("the first copy of this reading failed to store")
        return Receipt("duplicate", packet)

    async def _store_new(self, packet: Packet) -> Receipt:
        store, day = self.store, self.store.day
        new_meter = packet.meter_id not in store
        store.put(packet.meter_id, packet.slot, packet.energy_wh)
        future = self.writer.add_new(
            Reading(packet.meter_id, day, packet.slot, packet.energy_wh), new_meter
        )

        def forget_on_failure(done: asyncio.Future[None]) -> None:
            if done.exception() is not None and store.day == day:
                store.clear(packet.meter_id, packet.slot)

        future.add_done_callback(forget_on_failure)
        try:
            await future
        except StorageError as error:
            raise NotStoredError(str(error)) from error
        return Receipt("stored", packet)

    def restore(self, storage: Storage, day: date) -> int:
        """Open ``day``: fill today's store from the database; returns readings restored."""
        self.store.reset(day)
        restored = 0
        for reading in storage.readings_of_day(day):
            self.store.put(reading.meter_id, reading.slot, reading.energy_wh)
            restored += 1
        return restored

    async def merge_snapshot(self, recovery_dir: Path) -> int:
        """Store readings of the open day found in its recovery JSON but not in the database."""
        path = snapshot_path(recovery_dir, self.store.day)
        if not path.exists():
            return 0
        merged = 0
        for meter_id, slot, energy_wh in load_snapshot(path):
            if self.store.get(meter_id, slot) is None:
                new_meter = meter_id not in self.store
                self.store.put(meter_id, slot, energy_wh)
                self.writer.add_new(Reading(meter_id, self.store.day, slot, energy_wh), new_meter)
                merged += 1
        await self.writer.sync()
        return merged

    async def close_open_day(self) -> date:
        """Seed 2.3: total the open day into the database and open the next one."""
        day = self.store.day
        ids, energy, counts = self.store.totals()
        totals = list(zip(ids.tolist(), energy.tolist(), counts.tolist(), strict=True))
        self.store.reset(day + timedelta(days=1))
        await self.writer.run(lambda storage: storage.close_day(day, totals))
        for reading in await self.writer.run(
            lambda storage: list(storage.readings_of_day(day + timedelta(days=1)))
        ):
            if self.store.get(reading.meter_id, reading.slot) is None:
                self.store.put(reading.meter_id, reading.slot, reading.energy_wh)
        log.info("closed %s: %d meters, %.3f kWh", day, len(totals), int(np.sum(energy)) / 1000)
        return day
