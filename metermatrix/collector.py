"""Accepting readings (seed 2.1): today's store in front, the master database behind.

A reading of the open day is checked against today's store, put there at once and
acknowledged when its group commit returns; a reading of any other day (a late one,
or a ``00:01`` packet after the close) goes straight to the database, which decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from metermatrix.arrays import sorted_unique
from metermatrix.batches import ParsedBatch
from metermatrix.packets import Packet
from metermatrix.recovery import load_snapshot, read_meta, snapshot_path
from metermatrix.slots import SLOT_LABELS
from metermatrix.storage import (
    IMPORTED_DAY,
    OUTCOMES,
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


def _settle_future(future: asyncio.Future[Receipt], outcome: Receipt | BaseException) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class Collector:
    """Today's store and the writer, kept in step; the state the /meter handler uses."""

    def __init__(self, store: TodayStore, writer: ReadingWriter, shared: bool = False) -> None:
        self.store = store
        self.writer = writer
        #: Meters whose total of the open day was imported (``metermatrix import``, found
        #: by the writer in the commit): their packets of the day are refused at once.
        self.imported: set[int] = set()
        #: Several processes write the database (``--workers``): it decides every packet.
        self.shared = shared
        #: ``accept`` tasks of ``accept_then`` still running (referenced until done).
        self._accepting: set[asyncio.Task[Receipt]] = set()

    def accept_then(self, packet: Packet, reply: Callable[[Receipt | BaseException], None]
                    ) -> None:
        """``accept`` for a caller that answers from a callback, on the event loop.

        ``reply`` gets the receipt, or the error (``NotStoredError`` when the reading could
        not be made durable). A new reading of the open day, nearly every packet, is
        replied to from the pass that resolves its group commit: no task, no future.
        """
        if (self.shared or packet.day != self.store.day or packet.meter_id in self.imported
                or self.store.get(packet.meter_id, packet.slot) is not None):
            task = asyncio.ensure_future(self.accept(packet))
            self._accepting.add(task)
            task.add_done_callback(partial(self._replied, reply=reply))
            return
        self._put_new(packet, reply)

    def _replied(self, task: asyncio.Task[Receipt],
                 reply: Callable[[Receipt | BaseException], None]) -> None:
        self._accepting.discard(task)
        error = task.exception()
        reply(task.result() if error is None else error)

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
        if packet.meter_id in self.imported:
            return Receipt("imported", packet)
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
            if packet.meter_id in self.imported:  # the first copy was refused meanwhile
                return Receipt("imported", packet)
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
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._put_new(packet, partial(_settle_future, future))
        return await future

    def _put_new(self, packet: Packet, reply: Callable[[Receipt | BaseException], None]
                 ) -> None:
        """Put a new reading of the open day in today's store and queue it for the writer;
        ``reply`` learns its receipt once the commit returned, after today's store was
        settled (before any duplicate waiting on the commit resumes)."""
        store, day = self.store, self.store.day
        meter_id, slot = packet.meter_id, packet.slot
        new_meter = meter_id not in store
        store.put(meter_id, slot, packet.energy_wh)

        def committed(outcome: Outcome | None, error: BaseException | None) -> None:
            self._settle(day, meter_id, slot, outcome, error)
            if error is None:
                assert outcome is not None
                reply(Receipt(outcome, packet))
            elif isinstance(error, StorageError):
                reply(NotStoredError(str(error)))
            else:
                reply(error)

        self.writer.add_new_then(Reading(meter_id, day, slot, packet.energy_wh), new_meter,
                                 store.row_values(meter_id), committed)

    def _settle(self, day: date, meter_id: int, slot: int, outcome: Outcome | None,
                error: BaseException | None) -> None:
        """A reading put in today's store was written, failed, or refused as imported."""
        if self.store.day != day:
            return
        if error is not None:
            self.store.clear(meter_id, slot)
        elif outcome == "imported":
            self.imported.add(meter_id)
            self.store.clear(meter_id, slot)

    def _settle_done(self, done: asyncio.Future[Outcome], day: date, meter_id: int, slot: int
                     ) -> None:
        """``_settle`` from a resolved future (its first callback)."""
        error = done.exception()
        self._settle(day, meter_id, slot, None if error else done.result(), error)

    def move_meter(self, meter_id: int, region: str | None) -> None:
        """A meter's region changed: count its readings of today under the new one."""
        self.store.move(meter_id, region or UNASSIGNED)

    def restore(self, storage: Storage, day: date) -> int:
        """Open ``day``: fill today's store from the database; returns readings restored.

        Whole columns go into the store at once; room is reserved for every known meter.
        """
        self.store.reset(day)
        self.imported.clear()
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
        day, merges = self.store.day, []
        try:
            for meter_id, slot, energy_wh in load_snapshot(path):
                if self.store.get(meter_id, slot) is None:  # kept as acknowledged
                    new_meter = meter_id not in self.store
                    self.store.put_stored(meter_id, slot, energy_wh)
                    future = self.writer.add_new(Reading(meter_id, day, slot, energy_wh),
                                                 new_meter, self.store.row_values(meter_id))
                    future.add_done_callback(partial(self._settle_done, day=day,
                                                     meter_id=meter_id, slot=slot))
                    merges.append(future)
        except (ValueError, KeyError, TypeError) as error:
            aside = path.with_name(path.name + ".bad")
            path.replace(aside)
            log.error("recovery file %s is damaged (%s): moved to %s and ignored; the"
                      " database holds every acknowledged reading", path, error, aside.name)
        await self.writer.sync()  # queued after them: every merge is settled
        return sum(1 for future in merges
                   if future.exception() is None and future.result() == "stored")

    async def close_open_day(self) -> date:
        """Seed 2.3: total the open day into the database and open the next one."""
        day = self.store.day
        _, energy, _ = self.store.totals()
        # Every reading of ``day`` was queued before the close job, so the database's rows
        # are the store's: in one process they need not be read back, unless a commit of
        # them failed meanwhile (several processes: they are read).
        rows = None if self.shared else self.store.rows_by_id()
        failed = self.writer.failed_commits
        self.store.reset(day + timedelta(days=1))
        self.imported.clear()
        meters = await self.writer.run(lambda storage: storage.close_day_from_readings(
            day, rows if self.writer.failed_commits == failed else None))
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


#: Outcome codes of a batch's open-day lines.
_STORED, _DUPLICATE, _CONFLICTING, _IMPORTED = 0, 1, 2, 3


async def accept_batch(collector: Collector, batch: ParsedBatch) -> BatchResult:
    """File a batch of validated packets; returns once every stored reading is durable.

    Readings of the open day go through today's store (new, duplicate or conflict
    decided there, one row per meter written); the rest are decided by the database.
    A meter whose total of the open day was imported has all its lines of it refused.
    """
    store, day = collector.store, collector.store.day
    today = (batch.day_index == batch.days.index(day)) if day in batch.days else \
        np.zeros(len(batch), bool)
    if collector.shared:  # several processes: the database decides the open day's lines too
        today = np.zeros(len(batch), bool)
    lines, meter_ids = batch.lines[today], batch.meter_ids[today]
    slots, offered = batch.slots[today], batch.energy_wh[today]
    outcome, kept_wh, new_meters = _put_in_store(collector, meter_ids, slots, offered)
    stored = outcome == _STORED
    ids = sorted_unique(meter_ids[stored])
    waits: list[asyncio.Future[Any]] = []
    if len(ids):
        waits.append(collector.writer.add_rows(day, ids, store.rows_of(ids),
                                               sorted(new_meters.tolist())))
    others = [(code, here) for code, other in enumerate(batch.days)
              if (other != day or collector.shared) and (here := batch.day_index == code).any()]
    for code, here in others:  # each other day's lines: decided by the database
        waits.append(collector.writer.store_columns(
            batch.days[code], batch.meter_ids[here], batch.slots[here], batch.energy_wh[here]))
    waits.append(collector.writer.sync())
    try:
        results = await asyncio.gather(*waits)
    except StorageError as error:
        if store.day == day:
            for meter_id, slot in zip(meter_ids[stored].tolist(), slots[stored].tolist(),
                                      strict=True):
                store.clear(meter_id, slot)
        raise NotStoredError(str(error)) from error
    if len(ids) and results[0]:
        _refuse_imported(collector, day, set(results[0]), meter_ids, slots, outcome)
    result = _open_day_result(lines, outcome, kept_wh, batch.errors)
    for (code, here), codes in zip(others, results[len(results) - len(others) - 1: -1],
                                   strict=True):
        _add_other_day(result, batch.lines[here], codes)
        if batch.days[code] == day == store.day:  # shared: keep what the database took
            _cache_decided(store, batch.meter_ids[here], batch.slots[here],
                           batch.energy_wh[here], codes)
    return result


def _cache_decided(store: TodayStore, meter_ids: npt.NDArray[np.int64],
                   slots: npt.NDArray[np.int64], energy_wh: npt.NDArray[np.int64],
                   codes: npt.NDArray[np.int64]) -> None:
    """Put the open day's readings the database stored or already held into today's store."""
    held = (codes == OUTCOMES.index("stored")) | (codes == OUTCOMES.index("duplicate"))
    for meter_id, slot, wh in zip(meter_ids[held].tolist(), slots[held].tolist(),
                                  energy_wh[held].tolist(), strict=True):
        if store.get(meter_id, slot) is None:
            store.put_stored(meter_id, slot, wh)


def _add_other_day(result: BatchResult, lines: npt.NDArray[np.int64],
                   codes: npt.NDArray[np.int64]) -> None:
    """Count the lines of a day other than the open one, as the database decided them."""
    tally = np.bincount(codes, minlength=len(OUTCOMES))
    for outcome, count in zip(OUTCOMES, tally.tolist(), strict=True):
        result.counts["conflict" if outcome == "imported" else outcome] += count
    result.errors.extend((line, _CONFLICT) for line in
                         lines[codes == OUTCOMES.index("conflict")].tolist())
    result.errors.extend((line, IMPORTED_DAY) for line in
                         lines[codes == OUTCOMES.index("imported")].tolist())


def _put_in_store(collector: Collector, meter_ids: npt.NDArray[np.int64],
                  slots: npt.NDArray[np.int64], offered: npt.NDArray[np.int64]
                  ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The open day's lines against today's store: (outcome code, Wh held, new meters)."""
    blocked = np.isin(meter_ids, np.fromiter(collector.imported, np.int64,
                                             len(collector.imported)))
    offer = np.flatnonzero(~blocked)
    put = collector.store.put_many(meter_ids[offer], slots[offer], offered[offer])
    outcome = np.full(len(meter_ids), _IMPORTED, np.int64)
    outcome[offer] = np.where(put.stored, _STORED, np.where(
        put.kept_wh == offered[offer], _DUPLICATE, _CONFLICTING))
    kept_wh = np.zeros(len(meter_ids), np.int64)
    kept_wh[offer] = put.kept_wh
    return outcome, kept_wh, put.new_meters


def _refuse_imported(collector: Collector, day: date, imported: set[int],
                     meter_ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64],
                     outcome: npt.NDArray[np.int64]) -> None:
    """The writer refused some meters as imported: forget their readings, refuse their lines."""
    hit = np.isin(meter_ids, np.array(sorted(imported), np.int64))
    if collector.store.day == day:
        collector.imported.update(imported)
        for meter_id, slot in zip(meter_ids[hit & (outcome == _STORED)].tolist(),
                                  slots[hit & (outcome == _STORED)].tolist(), strict=True):
            collector.store.clear(meter_id, slot)
    outcome[hit] = _IMPORTED


def _open_day_result(lines: npt.NDArray[np.int64], outcome: npt.NDArray[np.int64],
                     kept_wh: npt.NDArray[np.int64], refused: list[tuple[int, str]]
                     ) -> BatchResult:
    """Counts and errors of the open day's lines (imported counts as a conflict)."""
    tally = np.bincount(outcome, minlength=4)
    counts = {"stored": int(tally[_STORED]), "duplicate": int(tally[_DUPLICATE]),
              "conflict": int(tally[_CONFLICTING] + tally[_IMPORTED]), "refused": len(refused)}
    errors = list(refused)
    conflicting = outcome == _CONFLICTING
    errors.extend((line, f"{_CONFLICT} (stored {wh / 1000} kWh)") for line, wh in zip(
        lines[conflicting].tolist(), kept_wh[conflicting].tolist(), strict=True))
    errors.extend((line, IMPORTED_DAY) for line in lines[outcome == _IMPORTED].tolist())
    return BatchResult(counts, errors)
