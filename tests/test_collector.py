"""Filing packets from callbacks (``Collector.accept_then``): a real writer, a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from metermatrix.collector import Collector, NotStoredError, Receipt
from metermatrix.packets import Packet
from metermatrix.storage import open_storage
from metermatrix.today import TodayStore
from metermatrix.writer import ReadingWriter
from tests import dbviews

DAY = date(2025, 2, 8)
SENT = datetime(2025, 2, 8, 12, 0, tzinfo=UTC)


def packet(meter_id: int, slot: int, energy_wh: int, day: date = DAY) -> Packet:
    return Packet(meter_id, SENT, energy_wh, day, slot)


def sql(data_dir: Path, statement: str) -> Any:
    with dbviews.connect(data_dir / "metermatrix.sqlite3") as db:
        row = db.execute(statement).fetchone()
        db.commit()
        return row[0] if row else None


def run_collector(data_dir: Path, body: Callable[[Collector], Awaitable[Any]]) -> Any:
    open_storage(data_dir).close()

    async def main() -> Any:
        writer = ReadingWriter(lambda: open_storage(data_dir), asyncio.get_running_loop())
        writer.start()
        try:
            return await body(Collector(TodayStore(DAY, max_reading_wh=50_000), writer))
        finally:
            writer.stop()

    return asyncio.run(main())


def filed(collector: Collector, offered: Packet) -> asyncio.Future[Receipt | BaseException]:
    """``accept_then`` with its reply caught in a future."""
    future: asyncio.Future[Receipt | BaseException] = \
        asyncio.get_running_loop().create_future()
    collector.accept_then(offered, future.set_result)
    return future


def test_new_duplicate_conflicting_and_late_packets_are_answered(tmp_path: Path) -> None:
    held: list[object] = []

    async def body(collector: Collector) -> list[object]:
        tasks = len(asyncio.all_tasks())
        first = filed(collector, packet(7, 20, 400))
        assert len(asyncio.all_tasks()) == tasks  # a new reading takes no task
        first.add_done_callback(lambda _: held.append(sql(
            tmp_path, f"SELECT energy_wh FROM readings WHERE day = '{DAY}' AND slot = 20")))
        copy = filed(collector, packet(7, 20, 400))  # sent again before the first's commit
        other = filed(collector, packet(7, 20, 401))
        late = filed(collector, packet(7, 20, 90, DAY - timedelta(days=1)))
        return [await answer for answer in (first, copy, other, late)]

    answers = run_collector(tmp_path, body)
    assert [answer.outcome for answer in answers] == ["stored", "duplicate", "conflict", "stored"]
    assert answers[2].stored_wh == 400
    assert held == [400]  # durable before the answer
    assert sql(tmp_path, "SELECT COUNT(*) FROM readings") == 2


def test_a_reading_whose_commit_fails_is_answered_not_stored_and_can_be_sent_again(
        tmp_path: Path) -> None:
    async def body(collector: Collector) -> tuple[object, ...]:
        await collector.writer.run(lambda storage: None)  # the schema is in place
        sql(tmp_path, "CREATE TRIGGER refuse BEFORE INSERT ON day_readings"
                      " WHEN NEW.meter_id = 66 BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        failed = await filed(collector, packet(66, 3, 250))
        freed = collector.store.get(66, 3)
        sql(tmp_path, "DROP TRIGGER refuse")
        again = await filed(collector, packet(66, 3, 250))
        return failed, freed, again

    failed, freed, again = run_collector(tmp_path, body)
    assert isinstance(failed, NotStoredError) and "disk says no" in str(failed)
    assert freed is None  # today's store gave the slot back
    assert isinstance(again, Receipt) and again.outcome == "stored"
    assert sql(tmp_path, "SELECT energy_wh FROM readings WHERE meter_id = 66") == 250
