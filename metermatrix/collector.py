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
from typing import Any

import numpy as np

from metermatrix.packets import Packet
from metermatrix.recovery import load_snapshot, read_meta, snapshot_path
from metermatrix.slots import SLOT_LABELS
from metermatrix.storage import (
    IMPORTED_DAY,
    UNASSIGNED,
    Outcome,
    Reading,
    Storage,
    StorageError,
)
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
        elif self.outcome == "imported":
            body["error"] = IMPORTED_DAY
        return body


class Collector:
    """Today's store and the writer, kept in step; the state the /meter handler uses."""

    def __init__(self, store: TodayStore, writer: ReadingWriter, shared: bool = False) -> None:
        self.store = store
        self.writer = writer
        #: Several processes write the database (``--workers``): it decides every packet.
        self.shared = shared

    async def accept(self, packet: Packet) -> Receipt:
        """File a validated packet; returns only once a stored reading is durable."""
        if self.shared and packet.day == self.store.day:
            return await self._accept_shared(packet)
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

    async def _accept_shared(self, packet: Packet) -> Receipt:
        """An open-day packet decided by the database; today's store keeps what it learns."""
        reading = Reading(packet.meter_id, packet.day, packet.slot, packet.energy_wh)
        try:
            outcome = await self.writer.store(reading)
            stored_wh: int | None = None
            if outcome == "conflict":
                held = await self.writer.run(lambda storage: storage.readings_between(
                    [reading.meter_id], reading.day, reading.day))
                stored_wh = next((r.energy_wh for r in held if r.slot == reading.slot), None)
        except StorageError as error:
            raise NotStoredError(str(error)) from error
        if outcome in ("stored", "duplicate") and self.store.day == packet.day:
            if self.store.get(packet.meter_id, packet.slot) is None:
                self.store.put_stored(packet.meter_id, packet.slot, packet.energy_wh)
        return Receipt(outcome, packet, stored_wh)

    async def roll_open_day(self) -> date:
        """Open the next day without closing this one (another process closes it)."""
        day = self.store.day
        self.store.reset(day + timedelta(days=1))
        ids, values = await self.writer.run(
            lambda storage: storage.day_matrix(day + timedelta(days=1)))
        self.store.merge(ids, values)
        return day

    async def _store_new(self, packet: Packet) -> Receipt:
        store, day = self.store, self.store.day
        new_meter = packet.meter_id not in store
        store.put(packet.meter_id, packet.slot, packet.energy_wh)
        future = self.writer.add_new(
            Reading(packet.meter_id, day, packet.slot, packet.energy_wh), new_meter,
            store.row_values(packet.meter_id),
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

    def move_meter(self, meter_id: int, region: str | None) -> None:
        """A meter's region changed: count its readings of today under the new one."""
        self.store.move(meter_id, region or UNASSIGNED)

    def restore(self, storage: Storage, day: date) -> int:
        """Open ``day``: fill today's store from the database; returns readings restored.

        Whole columns go into the store at once; room is reserved for every known meter.
        """
        self.store.reset(day)
        self.store.reserve(sum(storage.region_meter_counts().values()))
        ids, values = storage.day_matrix(day)
        return self.store.merge(ids, values)

    async def merge_snapshot(self, recovery_dir: Path, database_id: str) -> int:
        """Store readings of the open day found in its recovery JSON but not in the database.

        Skipped without reading the file when its meta file says it was taken from this
        database and the database holds at least as many of the day's readings as it.
        """
        path = snapshot_path(recovery_dir, self.store.day)
        if not path.exists():
            return 0
        meta = read_meta(path)
        if (meta is not None and meta.get("database_id") == database_id
                and meta.get("day") == self.store.day.isoformat()
                and isinstance(meta.get("readings"), int)
                and self.store.reading_count() >= meta["readings"]):  # type: ignore[operator]
            log.info("recovery file %s skipped: the database holds all it holds", path)
            return 0
        merged = 0
        try:
            for meter_id, slot, energy_wh in load_snapshot(path):
                if self.store.get(meter_id, slot) is None:  # kept as acknowledged
                    new_meter = meter_id not in self.store
                    self.store.put_stored(meter_id, slot, energy_wh)
                    self.writer.add_new(Reading(meter_id, self.store.day, slot, energy_wh),
                                        new_meter, self.store.row_values(meter_id))
                    merged += 1
        except (ValueError, KeyError, TypeError) as error:
            aside = path.with_name(path.name + ".bad")
            path.replace(aside)
            log.error("recovery file %s is damaged (%s): moved to %s and ignored; the"
                      " database holds every acknowledged reading", path, error, aside.name)
        await self.writer.sync()
        return merged

    async def close_open_day(self) -> date:
        """Seed 2.3: total the open day into the database and open the next one."""
        day = self.store.day
        _, energy, _ = self.store.totals()
        self.store.reset(day + timedelta(days=1))
        # Every reading of ``day`` was queued before the close job, so it is in the rows.
        meters = await self.writer.run(lambda storage: storage.close_day_from_readings(day))
        ids, values = await self.writer.run(
            lambda storage: storage.day_matrix(day + timedelta(days=1)))
        self.store.merge(ids, values)
        log.info("closed %s: %d meters, %.3f kWh", day, meters, int(np.sum(energy)) / 1000)
        return day


@dataclass
class BatchResult:
    """What happened to each line of a head-end batch."""

    counts: dict[str, int]
    #: (line number, error) of every line not stored.
    errors: list[tuple[int, str]]

    def as_json(self) -> dict[str, object]:
        """The /meter/batch response body."""
        errors = sorted(self.errors)
        return {**self.counts,
                "errors": [{"line": line, "error": message} for line, message in errors]}


_CONFLICT = "this meter already sent a different reading for this half hour"


async def accept_batch(collector: Collector, packets: list[Packet], lines: list[int],
                       refused: list[tuple[int, str]]) -> BatchResult:
    """File a batch of validated packets; returns once every stored reading is durable.

    Readings of the open day go through today's store (new, duplicate or conflict
    decided there, one row per meter written); the rest are decided by the database.
    """
    store, day = collector.store, collector.store.day
    counts = {"stored": 0, "duplicate": 0, "conflict": 0, "refused": len(refused)}
    errors = list(refused)
    put: list[tuple[int, int]] = []
    others: list[tuple[int, Packet]] = []
    new_meters: set[int] = set()
    for line, packet in zip(lines, packets, strict=True):
        if packet.day != day:
            others.append((line, packet))
            continue
        existing = store.get(packet.meter_id, packet.slot)
        if existing is None:
            if packet.meter_id not in store:
                new_meters.add(packet.meter_id)
            store.put(packet.meter_id, packet.slot, packet.energy_wh)
            put.append((packet.meter_id, packet.slot))
            counts["stored"] += 1
        elif existing == packet.energy_wh:
            counts["duplicate"] += 1
        else:
            counts["conflict"] += 1
            errors.append((line, f"{_CONFLICT} (stored {existing / 1000} kWh)"))
    ids = np.unique(np.array([meter for meter, _ in put], dtype=np.int64))
    waits: list[asyncio.Future[Any]] = []
    if len(ids):
        waits.append(collector.writer.add_rows(day, ids, store.rows_of(ids), sorted(new_meters)))
    readings = [Reading(p.meter_id, p.day, p.slot, p.energy_wh) for _, p in others]
    waits.append(collector.writer.store_many(readings) if readings else collector.writer.sync())
    try:
        results = await asyncio.gather(*waits)
    except StorageError as error:
        if store.day == day:
            for meter_id, slot in put:
                store.clear(meter_id, slot)
        raise NotStoredError(str(error)) from error
    for (line, _), outcome in zip(others, results[-1] or [], strict=True):
        if outcome == "imported":
            counts["conflict"] += 1
            errors.append((line, IMPORTED_DAY))
            continue
        counts[outcome] += 1
        if outcome == "conflict":
            errors.append((line, _CONFLICT))
    return BatchResult(counts, errors)
