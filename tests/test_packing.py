"""The compact form of a meter's day: round trips, missing slots, the largest reading."""

from __future__ import annotations

from datetime import date

import numpy as np

from metermatrix.storage import MeterRecord, Reading, SQLiteStorage
from metermatrix.storage.packing import (
    LATE,
    MISSING,
    ON_TIME,
    ROW_BYTES,
    day_number,
    day_of_number,
    group_slot_sums,
    pack_marks,
    pack_rows,
    unpack_marks,
    unpack_rows,
)

D1 = date(2026, 11, 30)


def test_rows_round_trip_with_missing_slots_and_the_largest_reading() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, MISSING, size=(50, 48)).astype(np.uint16)
    values[3, :] = MISSING
    values[4, 0] = MISSING - 1  # 65.534 kWh, the largest reading a cell holds
    values[5, 47] = 0
    blobs = pack_rows(values)
    assert all(len(blob) == ROW_BYTES for blob in blobs)
    assert np.array_equal(unpack_rows(blobs), values)
    assert blobs[4][:2] == (MISSING - 1).to_bytes(2, "little")


def test_marks_round_trip() -> None:
    marks = np.random.default_rng(1).integers(0, 4, size=(9, 48)).astype(np.uint8)
    blobs = pack_marks(marks)
    assert [len(blob) for blob in blobs] == [12] * 9
    assert all(np.array_equal(unpack_marks(blob), row) for blob, row in zip(blobs, marks,
                                                                            strict=True))


def test_day_numbers_round_trip() -> None:
    assert day_number(date(1970, 1, 1)) == 0
    assert day_of_number(day_number(D1)) == D1


def test_late_packet_amends_the_packed_day_and_is_marked_late(tmp_path) -> None:
    storage = SQLiteStorage(tmp_path / "db.sqlite3")
    storage.save_meter(MeterRecord(1, "A", None, "East"))
    with storage.transaction():
        storage.add_readings([Reading(1, D1, slot, 100) for slot in range(0, 48, 2)])
    storage.close_day_from_readings(D1)
    with storage.transaction():
        assert storage.store_reading(Reading(1, D1, 1, 65_534)) == "stored"
    (marks,) = storage._db.execute("SELECT marks FROM day_readings").fetchone()
    codes = unpack_marks(marks)
    assert codes[1] == LATE and codes[0] == ON_TIME and codes[2] == ON_TIME
    assert storage.daily_totals_between([1], D1, D1)[0].energy_wh == 24 * 100 + 65_534
    assert storage.region_days_between(D1, D1)[0].energy_wh == 24 * 100 + 65_534
    assert (D1, 1, 65_534, 1) in storage.region_slot_energy("East", D1, D1)
    storage.close()


def test_open_day_rows_from_todays_store_amend_a_day_closed_by_hand(tmp_path) -> None:
    storage = SQLiteStorage(tmp_path / "db.sqlite3")
    row = np.full(48, MISSING, np.uint16)
    row[:3] = [10, 20, 30]
    with storage.transaction():
        storage.add_meters([1])
        storage.put_day_rows(D1, [1], row[None, :])
    storage.close_day_from_readings(D1)
    row[3] = 40  # a reading that arrived after the hand close
    with storage.transaction():
        storage.put_day_rows(D1, [1], row[None, :])
    assert storage.daily_totals_between([1], D1, D1)[0].energy_wh == 100
    assert storage.daily_totals_between([1], D1, D1)[0].readings == 4
    assert storage.region_days_between(D1, D1)[0].energy_wh == 100
    storage.close()


def test_bytes_per_stored_reading_stay_under_four(tmp_path) -> None:
    storage = SQLiteStorage(tmp_path / "db.sqlite3")
    meters = 2_000
    ids = np.arange(1, meters + 1)
    with storage.transaction():
        storage.add_meters(ids.tolist())
    rng = np.random.default_rng(3)
    for offset in range(20):
        day = date(2026, 10, 1 + offset)
        with storage.transaction():
            storage.put_day_rows(day, ids.tolist(),
                                 rng.integers(0, 2000, size=(meters, 48)).astype(np.uint16))
        storage.close_day_from_readings(day)
    storage._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (tmp_path / "db.sqlite3").stat().st_size
    assert size / (meters * 20 * 48) < 4.0
    storage.close()


def test_group_slot_sums_equal_a_plain_sum_at_the_largest_readings() -> None:
    """Blocks of rows summed as they are, less the missing ones, give exact int64 sums."""
    rng = np.random.default_rng(7)
    meters = 3 * (1 << 15) + 123  # several blocks and a partial one
    values = rng.integers(0, MISSING, (meters, 48), dtype=np.uint16)
    values[: 1 << 15] = MISSING - 1  # a whole block at the largest reading
    values[rng.random(values.shape) < 0.05] = MISSING
    codes = rng.integers(0, 4, meters)  # group 4 of 5 holds no row
    energy, readings = group_slot_sums(codes, 5, values)
    present = values != MISSING
    for group in range(5):
        rows = codes == group
        assert energy[group].tolist() == np.where(present[rows], values[rows].astype(np.int64),
                                                  0).sum(axis=0).tolist()
        assert readings[group].tolist() == present[rows].sum(axis=0).tolist()
    assert energy.dtype == np.int64 and int(energy[4].sum()) == 0
