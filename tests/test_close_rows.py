"""The live day close takes the open day's rows from today's store (which the group commits
wrote) instead of reading them back, and writes exactly what a close from the database
writes; after a failed commit it reads the database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metermatrix.collector import Collector
from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage import (
    UNASSIGNED,
    MeterRecord,
    Reading,
    Storage,
    StorageError,
    open_storage,
)
from metermatrix.storage.packing import MISSING
from metermatrix.today import TodayStore
from metermatrix.writer import ReadingWriter

DAY = date(2026, 3, 4)
REGIONS = ("Central", "East", None)


def fill(data_dir: Path, meters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Meters in three regions (one none) and the day's rows, stored; returns the rows."""
    rng = np.random.default_rng(3)
    ids = rng.choice(np.arange(1000, 9000), meters, replace=False)  # not in id order
    values = rng.integers(0, 900, (meters, SLOTS_PER_DAY)).astype(np.uint16)
    values[rng.random(values.shape) < 0.2] = MISSING
    values[5] = MISSING  # a meter with a row and no reading
    storage = open_storage(data_dir)
    with storage.transaction():
        for index, meter_id in enumerate(ids.tolist()):
            storage.save_meter(MeterRecord(meter_id, None, None, REGIONS[index % 3]))
        storage.put_day_rows(DAY, ids.tolist(), values)
    storage.close()
    return ids, values


def close_through_collector(data_dir: Path, rows: tuple[np.ndarray, np.ndarray],
                            before: Callable[[ReadingWriter], Awaitable[Any] | None] | None = None,
                            statements: list[str] | None = None) -> list[Any]:
    """Close DAY with a collector whose store holds ``rows``, on a real writer thread
    (whose statements are appended to ``statements``). ``before`` queues a write just
    ahead of the close; its outcome (or error) is returned."""
    outcomes: list[Any] = []

    def opened() -> Storage:
        storage = open_storage(data_dir)
        if statements is not None:
            storage._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        return storage

    async def main() -> None:
        writer = ReadingWriter(opened, asyncio.get_running_loop())
        writer.start()
        store = TodayStore(DAY, MISSING - 1)
        store.merge(*rows)
        try:
            queued = before(writer) if before is not None else None
            await Collector(store, writer).close_open_day()
            if queued is not None:
                outcomes.extend(await asyncio.gather(queued, return_exceptions=True))
        finally:
            writer.stop()

    asyncio.run(main())
    return outcomes


def figures(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3")
    found = {table: sorted(db.execute(f"SELECT {columns} FROM {table}")) for table, columns in (
        ("daily_totals", "*"), ("region_daily", "*"), ("region_slots", "*"),
        ("day_total_columns", "*"), ("closed_days", "day"))}
    db.close()
    return found


def test_a_close_from_the_stores_rows_writes_what_a_close_from_the_database_writes(
        tmp_path: Path) -> None:
    read_back, from_store = tmp_path / "read", tmp_path / "store"
    rows = fill(read_back, 6000)  # past 5,000 meters the regions are read region by region
    assert fill(from_store, 6000)[0].tolist() == rows[0].tolist()
    storage = open_storage(from_store)
    assert {region: ids.tolist() for region, ids in storage.meters_by_region().items()} == {
        region or UNASSIGNED: sorted(m.meter_id for m in storage.list_meters(region or UNASSIGNED))
        for region in REGIONS}
    storage.close()
    storage = open_storage(read_back)
    assert storage.close_day_from_readings(DAY) == len(rows[0]) - 1
    storage.close()
    statements: list[str] = []
    close_through_collector(from_store, rows, statements=statements)
    assert figures(from_store) == figures(read_back)
    assert len(figures(from_store)["daily_totals"]) == len(rows[0]) - 1
    assert any("INSERT OR REPLACE INTO daily_totals" in s for s in statements)
    assert not [s for s in statements if "d.slots_wh" in s]  # the day's rows not read back


@pytest.mark.parametrize("commit_fails", [False, True])
def test_the_store_is_trusted_unless_a_commit_failed_before_the_close(
        tmp_path: Path, commit_fails: bool) -> None:
    ids, values = fill(tmp_path)
    held = values.copy()
    held[0, 0] = 7 if values[0, 0] == MISSING else values[0, 0]
    held[0, 1] = 5 if values[0, 1] == MISSING else values[0, 1]
    values[0, :2] = MISSING  # the database lacks two readings the store holds
    storage = open_storage(tmp_path)
    with storage.transaction():
        storage.put_day_rows(DAY, ids[:1].tolist(), values[:1])
    storage.close()

    outcomes = close_through_collector(  # the schema refuses a negative reading
        tmp_path, (ids, held),
        (lambda writer: writer.store(Reading(1, DAY, 0, -5))) if commit_fails else None)
    assert [type(outcome) for outcome in outcomes] == ([StorageError] if commit_fails else [])
    storage = open_storage(tmp_path)
    (total,) = storage.daily_totals_between([int(ids[0])], DAY, DAY)
    storage.close()
    source = values if commit_fails else held
    present = source[0] != MISSING
    assert (total.energy_wh, total.readings) == (int(source[0][present].sum()), int(present.sum()))
