"""The single writer: group commits on a real SQLite file, driven from a real event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metermatrix.storage import Reading, Storage, StorageError, open_storage
from metermatrix.writer import ReadingWriter
from tests import dbviews

DAY = date(2025, 2, 8)


def committed(data_dir: Path, sql: str = "SELECT COUNT(*) FROM readings") -> Any:
    """Ask a second connection: only committed rows are visible to it."""
    with dbviews.connect(data_dir / "metermatrix.sqlite3") as db:
        return db.execute(sql).fetchone()[0]


def run_with_writer(data_dir: Path, body: Callable[[ReadingWriter], Awaitable[Any]]) -> Any:
    """Run ``body(writer)`` on a fresh event loop with a started writer, then stop it."""
    open_storage(data_dir).close()  # create the schema first

    async def main() -> Any:
        writer = ReadingWriter(lambda: open_storage(data_dir), asyncio.get_running_loop())
        writer.start()
        try:
            return await body(writer)
        finally:
            writer.stop()

    return asyncio.run(main())


def test_reading_is_committed_before_its_future_resolves(tmp_path: Path) -> None:
    seen: list[int] = []

    async def body(writer: ReadingWriter) -> None:
        future = writer.add_new(Reading(999999999, DAY, 0, 4500), new_meter=True)
        future.add_done_callback(lambda _: seen.append(committed(tmp_path)))
        await future

    run_with_writer(tmp_path, body)
    assert seen == [1]
    assert committed(tmp_path, "SELECT COUNT(*) FROM meters WHERE meter_id = 999999999") == 1


def test_many_concurrent_readings_share_few_commits(tmp_path: Path) -> None:
    async def body(writer: ReadingWriter) -> tuple[int, int]:
        futures = [writer.add_new(Reading(m, DAY, 0, m), new_meter=True) for m in range(1, 2001)]
        await asyncio.gather(*futures)
        return writer.commits, writer.readings_committed

    commits, readings = run_with_writer(tmp_path, body)
    assert readings == 2000
    assert committed(tmp_path) == 2000
    assert commits <= 20, f"{commits} commits for 2000 readings: no grouping"


def test_store_lets_the_database_decide(tmp_path: Path) -> None:
    async def body(writer: ReadingWriter) -> list[str]:
        return list(await asyncio.gather(
            writer.store(Reading(7, DAY, 3, 100)),
            writer.store(Reading(7, DAY, 3, 100)),
            writer.store(Reading(7, DAY, 3, 101)),
        ))

    assert run_with_writer(tmp_path, body) == ["stored", "duplicate", "conflict"]
    assert committed(tmp_path, "SELECT energy_wh FROM readings") == 100


def test_jobs_run_in_order_with_readings(tmp_path: Path) -> None:
    async def body(writer: ReadingWriter) -> int:
        writer.add_new(Reading(1, DAY, 0, 10), new_meter=True)
        writer.add_new(Reading(1, DAY, 1, 20), new_meter=False)
        return await writer.run(lambda storage: len(list(storage.readings_of_day(DAY))))

    assert run_with_writer(tmp_path, body) == 2


def test_failing_job_raises_to_its_caller_and_the_writer_goes_on(tmp_path: Path) -> None:
    def broken(storage: Storage) -> None:
        raise KeyError("no such thing")

    async def body(writer: ReadingWriter) -> str:
        with pytest.raises(KeyError):
            await writer.run(broken)
        return await writer.store(Reading(1, DAY, 0, 10))

    assert run_with_writer(tmp_path, body) == "stored"


def test_refused_commit_fails_its_readings_with_storage_error(tmp_path: Path) -> None:
    async def body(writer: ReadingWriter) -> str:
        with pytest.raises(StorageError):
            await writer.store(Reading(1, DAY, 0, -5))  # the schema refuses negative energy
        return await writer.store(Reading(1, DAY, 0, 10))

    assert run_with_writer(tmp_path, body) == "stored"
    assert committed(tmp_path) == 1


def test_stop_finishes_everything_queued(tmp_path: Path) -> None:
    async def body(writer: ReadingWriter) -> None:
        for meter_id in range(1, 301):
            writer.add_new(Reading(meter_id, DAY, 5, 1), new_meter=True)

    run_with_writer(tmp_path, body)
    assert committed(tmp_path) == 300


def test_sync_waits_for_earlier_writes(tmp_path: Path) -> None:
    async def body(writer: ReadingWriter) -> int:
        for slot in range(48):
            writer.add_new(Reading(1, DAY, slot, slot), new_meter=slot == 0)
        await writer.sync()
        return int(committed(tmp_path, "SELECT SUM(energy_wh) FROM readings"))

    assert run_with_writer(tmp_path, body) == sum(range(48))


def test_a_batch_row_and_a_later_single_reading_in_one_commit_keep_both(tmp_path: Path) -> None:
    """Rows are copies of today's store in queue order: a batch's copy taken before a
    single packet's must not be written over the single's (an acknowledged reading lost)."""
    from metermatrix.today import TodayStore

    store = TodayStore(DAY, max_reading_wh=50_000)

    async def body(writer: ReadingWriter) -> None:
        hold = writer.run(lambda storage: time.sleep(0.3))  # the next requests share a commit
        store.put(7, 0, 100)  # a head-end batch of the open day
        batch = writer.add_rows(DAY, np.array([7], np.int64), store.rows_of(
            np.array([7], np.int64)), [7])
        store.put(7, 2, 94)  # then a single packet of the same meter
        single = writer.add_new(Reading(7, DAY, 2, 94), False, store.row_values(7))
        await asyncio.gather(hold, batch, single)

    run_with_writer(tmp_path, body)
    assert committed(tmp_path, "SELECT group_concat(slot || ':' || energy_wh) FROM readings"
                     " WHERE meter_id = 7") == "0:100,2:94"


def test_open_day_readings_of_a_meter_imported_meanwhile_are_refused_in_the_commit(
        tmp_path: Path) -> None:
    """Another process imports meter 5's total of the open day after its reading was
    queued: the commit finds the import, writes nothing of meter 5 and says so."""
    from metermatrix.storage import DailyTotal
    from metermatrix.today import TodayStore

    store = TodayStore(DAY, max_reading_wh=50_000)
    for meter_id in (5, 6):
        store.put(meter_id, 3, 400)

    def import_in_another_connection(_: Storage) -> None:
        other = open_storage(tmp_path)
        try:
            other.import_daily_totals([DailyTotal(5, DAY, 9000, 48)])
        finally:
            other.close()

    async def body(writer: ReadingWriter) -> tuple[object, ...]:
        await writer.run(import_in_another_connection)
        single = writer.add_new(Reading(5, DAY, 3, 400), True, store.row_values(5))
        ids = np.array([5, 6], np.int64)
        batch = writer.add_rows(DAY, ids, store.rows_of(ids), [5, 6])
        other = writer.add_new(Reading(7, DAY, 4, 10), True)
        return tuple(await asyncio.gather(single, batch, other))

    assert run_with_writer(tmp_path, body) == ("imported", [5], "stored")
    assert committed(tmp_path, "SELECT group_concat(meter_id || ':' || slot) FROM readings"
                     ) == "6:3,7:4"
    assert committed(tmp_path, "SELECT group_concat(meter_id || ':' || energy_wh) FROM"
                     " (SELECT * FROM day_totals ORDER BY meter_id)") == "5:9000,6:400,7:10"


def test_replies_come_in_queue_order_from_the_pass_that_resolves_the_commit(
        tmp_path: Path) -> None:
    """Readings queued with a reply are answered once their commit returned, in queue
    order, before the callbacks of any future of the same commits run, with no task or
    future of their own; a reply that raises does not keep the others from theirs."""
    replies: list[tuple[int, object, object, int]] = []

    def reply(meter_id: int) -> Callable[[object, BaseException | None], None]:
        def answer(outcome: object, error: BaseException | None) -> None:
            replies.append((meter_id, outcome, error, committed(tmp_path)))
            if meter_id == 3:
                raise RuntimeError("this reply fails")
        return answer

    async def body(writer: ReadingWriter) -> tuple[int, int, list[int]]:
        tasks = len(asyncio.all_tasks())
        for meter_id in range(1, 201):
            writer.add_new_then(Reading(meter_id, DAY, 0, meter_id), True, None, reply(meter_id))
        queued_tasks = len(asyncio.all_tasks())
        seen_by_sync: list[int] = []
        synced = writer.sync()
        synced.add_done_callback(lambda _: seen_by_sync.append(len(replies)))
        await synced
        return tasks, queued_tasks, seen_by_sync

    tasks, queued_tasks, seen_by_sync = run_with_writer(tmp_path, body)
    assert queued_tasks == tasks
    assert [meter_id for meter_id, *_ in replies] == list(range(1, 201))
    assert all(outcome == "stored" and error is None for _, outcome, error, _ in replies)
    assert all(held >= meter_id for meter_id, _, _, held in replies)  # durable before its reply
    assert seen_by_sync == [200]


def test_a_refused_commit_replies_with_its_error(tmp_path: Path) -> None:
    replies: list[tuple[object, object]] = []

    async def body(writer: ReadingWriter) -> None:
        writer.add_new_then(Reading(1, DAY, 0, -5), True, None,  # the schema refuses it
                            lambda outcome, error: replies.append((outcome, error)))
        with pytest.raises(StorageError):  # the sync shared the failed commit
            await writer.sync()

    run_with_writer(tmp_path, body)
    assert len(replies) == 1 and isinstance(replies[0][1], StorageError)
    assert committed(tmp_path) == 0


@pytest.mark.parametrize("meters", [1, 27, 256, 300])
def test_known_meters_rows_of_an_open_day_commit_as_one_write(tmp_path: Path,
                                                              meters: int) -> None:
    """The common group (new readings of known meters, one open day) is written by one
    statement that is its own transaction; over 256 meters it takes a transaction. Both
    write every meter's latest row, and are durable before the futures resolve."""
    from metermatrix.today import TodayStore

    store = TodayStore(DAY, max_reading_wh=50_000)
    ids = list(range(1, meters + 1))
    storage = open_storage(tmp_path)
    storage.add_meters(ids)
    storage.close()
    seen: list[int] = []

    async def body(writer: ReadingWriter) -> list[object]:
        futures = []
        for slot in (0, 1):  # two readings of each meter in one group: the later row wins
            for meter_id in ids:
                store.put(meter_id, slot, meter_id + slot)
                futures.append(writer.add_new(Reading(meter_id, DAY, slot, meter_id + slot),
                                              False, store.row_values(meter_id)))
        futures[-1].add_done_callback(lambda _: seen.append(committed(tmp_path)))
        return list(await asyncio.gather(*futures))

    assert run_with_writer(tmp_path, body) == ["stored"] * (2 * meters)
    assert seen == [2 * meters]
    assert committed(tmp_path, "SELECT SUM(energy_wh) FROM readings") == \
        sum(2 * m + 1 for m in ids)


def test_known_meters_rows_of_a_day_closed_meanwhile_amend_it(tmp_path: Path) -> None:
    """Another process closed the open day: the one-statement write finds it closed,
    writes nothing, and the commit amends the closed day in a transaction instead."""
    from metermatrix.today import TodayStore

    store = TodayStore(DAY, max_reading_wh=50_000)
    storage = open_storage(tmp_path)
    storage.add_meters([5, 6])
    storage.close_day_from_readings(DAY)
    storage.close()
    store.put(5, 3, 400)

    async def body(writer: ReadingWriter) -> object:
        return await writer.add_new(Reading(5, DAY, 3, 400), False, store.row_values(5))

    assert run_with_writer(tmp_path, body) == "stored"
    assert committed(tmp_path, "SELECT energy_wh FROM day_totals WHERE meter_id = 5") == 400
