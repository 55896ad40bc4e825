"""The simulator's head-end batches: their ledger lines are those of single packets."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from metermatrix.headend import Block
from metermatrix.simulation import Delivery, Ledger, format_timestamp, send_time

TZ = ZoneInfo("Asia/Singapore")
DAY = date(2026, 12, 1)


def block() -> Block:
    slots = [0, 1, 17, 47]
    readings = np.array([[0, 1, 250, 65534], [1999, 20, 7, 1000], [5, 0, 0, 12345]])
    return Block([100000001, 100000002, 999999999], DAY, slots,
                 [format_timestamp(send_time(DAY, slot, TZ)) for slot in slots], readings)


def single_packet_ledger(tmp_path: Path, batch: Block, status: str, skip: set[int]
                         ) -> list[dict[str, object]]:
    path = tmp_path / f"{status}-{len(skip)}.jsonl"
    ledger = Ledger(path)
    line = 0
    for meter_id, row in zip(batch.meter_ids, batch.energy_wh.tolist(), strict=True):
        for slot, energy_wh in zip(batch.slots, row, strict=True):
            line += 1
            if line not in skip:
                delivery = Delivery(meter_id, DAY, slot, send_time(DAY, slot, TZ), energy_wh)
                ledger.record(delivery, status, {"date": DAY.isoformat()})
    ledger.close()
    return [orjson.loads(text) for text in path.read_bytes().splitlines()]


def test_block_ledger_lines_are_the_single_packet_lines(tmp_path: Path) -> None:
    batch = block()
    for status, skip in [("stored", set()), ("stored-or-duplicate", {1, 6, 12})]:
        lines = [orjson.loads(text) for text in batch.ledger_lines(status, skip).splitlines()]
        assert lines == single_packet_ledger(tmp_path, batch, status, skip)
        assert len(lines) == 12 - len(skip)


def test_block_body_is_one_packet_per_line_meter_major() -> None:
    batch = block()
    packets = [orjson.loads(text) for text in batch.body().split(b"\n")]
    assert [(p["id"], p["timestamp"]) for p in packets[:5]] == [
        (100000001, batch.stamps[0]), (100000001, batch.stamps[1]),
        (100000001, batch.stamps[2]), (100000001, batch.stamps[3]),
        (100000002, batch.stamps[0])]
    assert [round(p["reading_kWh"] * 1000) for p in packets] == batch.energy_wh.ravel().tolist()
