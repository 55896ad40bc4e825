"""The recovery JSON (seed 1.3): the seed's nested format, written atomically, read back."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pytest

from metermatrix.recovery import (
    id_prefixes,
    load_snapshot,
    read_meta,
    snapshot_path,
    write_snapshot,
)
from metermatrix.slots import slot_of_label
from metermatrix.today import TodayStore

DAY = date(2025, 2, 8)


def filled_store(max_reading_wh: int = 50_000) -> TodayStore:
    store = TodayStore(DAY, max_reading_wh=max_reading_wh)
    store.put(999999999, 0, 4500)
    store.put(999999999, 46, 4350)
    store.put(999999999, 47, 4730)
    store.put(555555555, 0, 0)
    store.put(555555555, 20, max_reading_wh)
    store.put(1, 5, 1)
    store.put(12345, 10, 999)
    return store


def test_snapshot_path_names_the_day(tmp_path: Path) -> None:
    assert snapshot_path(tmp_path, DAY) == tmp_path / "recovery-2025-02-08.json"


def test_snapshot_is_the_seed_nested_format(tmp_path: Path) -> None:
    store = filled_store()
    path = snapshot_path(tmp_path / "recovery", DAY)
    written = write_snapshot(store, path)
    text = path.read_bytes()
    assert written == len(text)
    data = orjson.loads(text)
    assert data == store.to_nested()
    assert data["999999999"] == {"00:31": 4.5, "23:31": 4.35, "00:01": 4.73}
    assert data["555555555"] == {"00:31": 0.0, "10:31": 50.0}
    assert data["1"] == {"03:01": 0.001}


def test_snapshot_reads_back_every_reading(tmp_path: Path) -> None:
    store = filled_store()
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    assert sorted(load_snapshot(path)) == sorted(store.iter_readings())


def test_empty_store_writes_an_empty_object(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    write_snapshot(TodayStore(DAY, max_reading_wh=50_000), path)
    assert orjson.loads(path.read_bytes()) == {}
    assert list(load_snapshot(path)) == []


def test_meters_without_readings_are_left_out(tmp_path: Path) -> None:
    store = filled_store()
    store.clear(1, 5)
    store.put(2, 0, 7)
    store.reset(DAY)
    store.put(2, 1, 8)
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    assert orjson.loads(path.read_bytes()) == {"2": {"01:01": 0.008}}


@pytest.mark.parametrize("ceiling_wh", [1, 999, 9_999, 50_000, 65_534])
def test_every_ceiling_formats_readings_exactly(tmp_path: Path, ceiling_wh: int) -> None:
    store = TodayStore(DAY, max_reading_wh=ceiling_wh)
    values = sorted({0, 1, ceiling_wh // 3, ceiling_wh - 1, ceiling_wh})
    for slot, value in enumerate(values):
        store.put(777, slot, value)
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    assert sorted(load_snapshot(path)) == sorted(store.iter_readings())


def test_many_meters_across_write_chunks_stay_valid_json(tmp_path: Path) -> None:
    store = TodayStore(DAY, max_reading_wh=50_000)
    for meter_id in range(100_000_000, 100_045_000):
        store.put(meter_id, meter_id % 48, meter_id % 50_001)
    store.put(100_000_000, 47, 12)
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    data = orjson.loads(path.read_bytes())
    assert len(data) == 45_000
    assert data == store.to_nested()


def test_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    store = filled_store()
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    store.put(42, 0, 420)
    write_snapshot(store, path)
    assert orjson.loads(path.read_bytes())["42"] == {"00:31": 0.42}
    assert sorted(os.listdir(tmp_path)) == ["snap.json", "snap.meta.json"]


def test_failed_write_leaves_the_previous_snapshot_whole(tmp_path: Path) -> None:
    store = filled_store()
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    before = path.read_bytes()
    (tmp_path / f".snap.json.{os.getpid()}.tmp").mkdir()  # the temporary cannot be opened
    store.put(42, 0, 420)
    with pytest.raises(OSError):
        write_snapshot(store, path)
    assert path.read_bytes() == before


def test_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(b"[1, 2]")
    with pytest.raises(ValueError, match="not a recovery file"):
        list(load_snapshot(path))


def test_store_with_meters_but_no_readings_yet_writes_an_empty_object(tmp_path: Path) -> None:
    store = filled_store()
    store.reset(date(2025, 2, 9))  # just after the day close: rows kept, every slot empty
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    assert orjson.loads(path.read_bytes()) == {}


def test_block_of_meters_without_readings_is_skipped(tmp_path: Path) -> None:
    store = TodayStore(DAY, max_reading_wh=50_000)
    for meter_id in range(1, 25_001):
        store.put(meter_id, 0, 1)
    for meter_id in range(1, 25_001):
        if meter_id != 7:
            store.clear(meter_id, 0)  # the whole second write block is empty
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    assert orjson.loads(path.read_bytes()) == {"7": {"00:31": 0.001}}


def test_meter_ids_are_written_right_aligned_in_fixed_width() -> None:
    ids = [1, 9, 10, 99, 12345, 100000000, 999999999]
    text = id_prefixes(np.array(ids, dtype=np.int64))
    assert [bytes(row) for row in text] == [b',%11s:{' % (b'"%d"' % i) for i in ids]


def big_store(meters: int = 3000) -> TodayStore:
    store = TodayStore(DAY, max_reading_wh=65_534)
    rng = np.random.default_rng(11)
    for meter_id in rng.choice(999_999_999, size=meters, replace=False).tolist():
        for slot in rng.choice(48, size=int(rng.integers(1, 49)), replace=False).tolist():
            store.put(int(meter_id) + 1, slot, int(rng.integers(0, 65_535)))
    return store


@pytest.mark.parametrize("block_bytes", [1, 97, 4096, 1 << 20])
def test_streamed_load_reads_what_a_whole_file_parse_reads(tmp_path: Path,
                                                           block_bytes: int) -> None:
    store = big_store(300 if block_bytes == 1 else 3000)
    path = tmp_path / "snap.json"
    write_snapshot(store, path)
    whole = orjson.loads(path.read_bytes())
    expected = sorted((int(m), slot, round(kwh * 1000)) for m, slots in whole.items()
                      for label, kwh in slots.items() for slot in [slot_of_label(label)])
    assert sorted(load_snapshot(path, block_bytes=block_bytes)) == expected
    assert len(expected) == store.reading_count()


@pytest.mark.parametrize("text", [b"", b"[1, 2]", b'{"1": {"00:31": 0.1}', b'{"1": 5}',
                                  b'{"1": {"25:00": 0.1}}', b'{"1": {"00:31": 0.1}}}'])
def test_a_damaged_recovery_file_raises_value_error(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(text)
    with pytest.raises((ValueError, KeyError)):
        list(load_snapshot(path, block_bytes=4))


def test_snapshot_writes_a_meta_file_saying_what_it_holds(tmp_path: Path) -> None:
    store = filled_store()
    path = tmp_path / "recovery-2025-02-08.json"
    write_snapshot(store, path, "db-1")
    assert read_meta(path) == {"day": "2025-02-08", "readings": 7, "database_id": "db-1"}
