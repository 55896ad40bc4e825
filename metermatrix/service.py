"""The running collection service: writer, today's store and the scheduled routines."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from metermatrix import metrics
from metermatrix.collector import Collector
from metermatrix.meterregions import MeterRegions
from metermatrix.packets import PacketRules
from metermatrix.readers import Readers
from metermatrix.recovery import snapshot_path, write_snapshot
from metermatrix.routines import (
    catch_up,
    next_close,
    open_day_for,
    prune_snapshots,
    snapshot_in_child,
    wait_for_child,
)
from metermatrix.settings import Settings
from metermatrix.signing import load_fleet_key
from metermatrix.storage import Storage, open_storage
from metermatrix.today import TodayStore
from metermatrix.writer import ReadingWriter

log = logging.getLogger(__name__)

#: How often a worker of ``--workers`` that does not run the routines asks for them [s].
LEADER_RETRY_S = 2.0


def utc_now() -> datetime:
    """The current instant, timezone-aware."""
    return datetime.now(UTC)


class MeterService:
    """Everything the web handlers share: settings, rules, collector and a read connection."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.rules = PacketRules(
            tz=settings.tz,
            max_reading_wh=settings.max_reading_wh,
            late=timedelta(days=settings.late_days),
            future=timedelta(minutes=settings.future_minutes),
            drift=timedelta(minutes=settings.drift_minutes),
        )
        self.fleet_key = load_fleet_key(settings.data_dir)
        self.storage: Storage = open_storage(settings.data_dir, database=settings.database)
        self.writer: ReadingWriter | None = None
        # With several workers the database decides each packet, and one worker (the
        # holder of the routines lock) runs the close and the snapshot.
        self.shared = settings.workers > 1
        self.leader = not self.shared
        self.collector: Collector | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._snapshot_task: asyncio.Future[bool] | None = None
        # Reads that take more than a few milliseconds (a resident's page: its figures
        # and chart) run there, beside the event loop, so meters are answered meanwhile.
        self.readers = Readers(settings.data_dir, settings.reader_processes, settings.database)

    async def start(self) -> None:
        """Start the writer, close missed days, restore today and schedule the routines."""
        loop = asyncio.get_running_loop()
        self.writer = ReadingWriter(
            lambda: open_storage(self.settings.data_dir, database=self.settings.database), loop)
        self.writer.start()
        open_day = open_day_for(self.clock(), self.settings)
        await self.writer.run(lambda storage: storage.prepare_days(open_day))
        missed = await self.writer.run(lambda storage: catch_up(storage, open_day))
        store = TodayStore(open_day, self.settings.max_reading_wh,
                           regions=MeterRegions.from_storage(self.storage))
        self.collector = Collector(store, self.writer, shared=self.shared)
        restored = self.collector.restore(self.storage, open_day)
        self._try_to_lead()
        merged = 0
        if self.leader:
            merged = await self.collector.merge_snapshot(self.settings.recovery_dir,
                                                         self.storage.database_id())
        log.info("open day %s: %d readings restored, %d merged from recovery, %d days caught up",
                 open_day, restored, merged, len(missed))
        self._schedule_close()
        self._schedule_snapshot()
        self.readers.warm_up()

    def _try_to_lead(self) -> None:
        """Take the routines (close, snapshot) if no other worker holds them; retry later."""
        if not self.leader:
            self.leader = self.storage.try_lock_routines()
            if self.leader:
                log.info("this worker (pid %d) now runs the day close and the snapshots",
                         os.getpid())
        if not self.leader:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(LEADER_RETRY_S, self._try_to_lead))

    @property
    def open_day(self) -> date:
        """The day today's store collects."""
        assert self.collector is not None
        return self.collector.store.day

    # -- the day close -------------------------------------------------------------
    def _schedule_close(self) -> None:
        now = self.clock()
        delay = (next_close(now, self.settings) - now).total_seconds()
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, lambda: asyncio.ensure_future(self._close())))

    async def _close(self) -> None:
        try:
            if self.leader:
                await self.close_due_days()
            else:
                await self.follow_due_days()
        finally:
            self._schedule_close()

    async def follow_due_days(self) -> None:
        """A worker without the routines: open the next day in today's store (a cache)."""
        assert self.collector is not None
        while self.open_day < open_day_for(self.clock(), self.settings):
            await self.collector.roll_open_day()

    async def close_due_days(self) -> list[date]:
        """Close the open day only once the clock has passed its close (timers may fire early)."""
        closed: list[date] = []
        while self.open_day < open_day_for(self.clock(), self.settings):
            closed.append(await self.close_open_day())
        return closed

    async def close_open_day(self) -> date:
        """Seed 2.3 now: snapshot, total the open day, open the next."""
        assert self.collector is not None and self.writer is not None
        await self.snapshot()
        closed = await self.collector.close_open_day()
        open_day = self.open_day  # late readings of days never closed (the server was down)
        await self.writer.run(lambda storage: storage.prepare_days(open_day))
        await self.writer.run(lambda storage: catch_up(storage, open_day))
        prune_snapshots(self.settings.recovery_dir, keep_days=7, today=open_day)
        return closed

    # -- recovery snapshots --------------------------------------------------------
    def _schedule_snapshot(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.snapshot_hours * 3600

        def tick() -> None:
            asyncio.ensure_future(self.snapshot())
            self._timers.append(loop.call_later(interval, tick))

        self._timers.append(loop.call_later(interval, tick))

    async def snapshot(self) -> bool:
        """Write today's store to the recovery JSON in a forked child; True on success."""
        assert self.collector is not None
        if not self.leader:
            return False  # the leading worker writes the snapshot
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return await self._snapshot_task
        path = snapshot_path(self.settings.recovery_dir, self.open_day)
        pid = snapshot_in_child(self.collector.store, path, self.storage.database_id())
        loop = asyncio.get_running_loop()
        task = self._snapshot_task = loop.run_in_executor(None, wait_for_child, pid)
        ok = await metrics.timed_snapshot(task)
        if not ok:
            log.error("recovery snapshot to %s failed", path)
        return ok

    async def stop(self) -> None:
        """Clean shutdown: finish the queue, write the recovery JSON, close connections."""
        for timer in self._timers:
            timer.cancel()
        if self._snapshot_task is not None:
            await self._snapshot_task
        if self.writer is not None:
            await self.writer.sync()
            self.writer.stop()
        if self.collector is not None and self.leader:
            try:
                write_snapshot(self.collector.store,
                               snapshot_path(self.settings.recovery_dir, self.open_day),
                               self.storage.database_id())
            except OSError as error:  # the writer has synced: the database holds everything
                log.error("recovery snapshot not written at shutdown (%s); every acknowledged "
                          "reading is in the database", error)
        self.readers.close()
        self.storage.close()
