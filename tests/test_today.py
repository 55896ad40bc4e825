"""Today's readings in memory (seed 1.2): exact totals, seed export, compact storage."""

from __future__ import annotations

import tracemalloc
from datetime import date

import orjson
import pytest

from metermatrix.slots import slot_of_label
from metermatrix.today import TodayStore

DAY = date(2025, 2, 8)


def make_store(capacity: int = 4) -> TodayStore:
    return TodayStore(DAY, max_reading_wh=50_000, capacity=capacity)


def test_empty_store_has_no_readings() -> None:
    store = make_store()
    assert len(store) == 0
    assert store.get(999999999, 0) is None
    assert store.reading_count() == 0
    assert store.to_nested() == {}
    ids, energy, counts = store.totals()
    assert ids.size == energy.size == counts.size == 0


def test_put_then_get_returns_the_reading_in_wh() -> None:
    store = make_store()
    store.put(999999999, 0, 4500)
    store.put(999999999, 47, 0)
    assert store.get(999999999, 0) == 4500
    assert store.get(999999999, 47) == 0  # a zero reading is a reading, not a gap
    assert store.get(999999999, 1) is None
    assert store.get(555555555, 0) is None
    assert 999999999 in store and 555555555 not in store


def test_reading_at_the_ceiling_fits_and_above_is_refused() -> None:
    store = make_store()
    store.put(1, 5, 50_000)
    assert store.get(1, 5) == 50_000
    with pytest.raises(ValueError):
        store.put(1, 6, 50_001)
    with pytest.raises(ValueError):
        store.put(1, 6, -1)


@pytest.mark.parametrize("ceiling", [0, 0xFFFF, 100_000])
def test_ceiling_that_does_not_fit_a_cell_is_refused(ceiling: int) -> None:
    with pytest.raises(ValueError):
        TodayStore(DAY, max_reading_wh=ceiling)


def test_store_grows_past_its_capacity_without_losing_readings() -> None:
    store = make_store(capacity=2)
    for meter_id in range(1, 101):
        store.put(meter_id, meter_id % 48, meter_id * 10)
    assert len(store) == 100
    assert all(store.get(m, m % 48) == m * 10 for m in range(1, 101))
    assert store.reading_count() == 100


def test_totals_are_the_exact_sum_of_readings_in_wh() -> None:
    store = make_store()
    for slot in range(48):
        store.put(999999999, slot, 50_000)  # 48 x 50 kWh overflows 16 bits many times over
        store.put(555555555, slot, 333)
    store.put(123456789, 3, 1)
    ids, energy, counts = store.totals()
    got = dict(zip(ids.tolist(), zip(energy.tolist(), counts.tolist(), strict=True), strict=True))
    assert got == {999999999: (2_400_000, 48), 555555555: (15_984, 48), 123456789: (1, 1)}


def test_totals_leave_out_meters_without_readings() -> None:
    store = make_store()
    store.put(1, 0, 100)
    store.put(2, 0, 200)
    store.clear(2, 0)
    ids, _, _ = store.totals()
    assert ids.tolist() == [1]


def test_export_is_the_seed_nested_format() -> None:
    store = make_store()
    store.put(999999999, slot_of_label("00:31"), 4500)
    store.put(999999999, slot_of_label("23:31"), 4350)
    store.put(555555555, slot_of_label("00:31"), 4500)
    store.put(555555555, slot_of_label("23:31"), 4350)
    seed_text = b"""{
      "999999999": {"00:31": 4.50, "23:31": 4.35},
      "555555555": {"00:31": 4.50, "23:31": 4.35}
    }"""
    assert store.to_nested() == orjson.loads(seed_text)
    assert orjson.loads(orjson.dumps(store.to_nested())) == orjson.loads(seed_text)


def test_iter_readings_yields_every_reading_once() -> None:
    store = make_store()
    store.put(7, 2, 20)
    store.put(7, 1, 10)
    store.put(8, 47, 470)
    assert sorted(store.iter_readings()) == [(7, 1, 10), (7, 2, 20), (8, 47, 470)]


def test_reset_empties_every_slot_for_the_new_day() -> None:
    store = make_store()
    store.put(1, 0, 100)
    store.reset(date(2025, 2, 9))
    assert store.day == date(2025, 2, 9)
    assert store.get(1, 0) is None
    assert store.reading_count() == 0
    assert store.to_nested() == {}


def test_reserve_keeps_what_is_there() -> None:
    store = make_store()
    store.put(5, 5, 5)
    store.reserve(10_000)
    assert store.get(5, 5) == 5
    assert store.meter_ids().tolist() == [5]


def test_one_point_four_million_meters_fit_well_under_one_gib() -> None:
    meters = 50_000
    tracemalloc.start()
    try:
        store = TodayStore(DAY, max_reading_wh=50_000)
        for meter_id in range(100_000_000, 100_000_000 + meters):
            store.put(meter_id, 0, 1)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    projected_bytes = current / meters * 1_400_000
    assert projected_bytes < 512 * 2**20, f"{projected_bytes / 2**20:.0f} MiB for 1.4 M meters"


def region_sums_by_hand(store: TodayStore, region_of: dict[int, str], region: str
                        ) -> tuple[list[int], list[int]]:
    energy, readings = [0] * 48, [0] * 48
    for meter_id, slot, energy_wh in store.iter_readings():
        if region_of.get(meter_id, "Unassigned") == region:
            energy[slot] += energy_wh
            readings[slot] += 1
    return energy, readings


def test_region_sums_follow_every_put_clear_merge_move_and_reset() -> None:
    import numpy as np

    from metermatrix.meterregions import MeterRegions

    rng = np.random.default_rng(7)
    region_of = {1000 + m: ("West", "East", "North")[m % 3] for m in range(40)}
    groups = {name: np.array(sorted(m for m, r in region_of.items() if r == name))
              for name in ("West", "East", "North")}
    store = TodayStore(DAY, max_reading_wh=50_000, capacity=2,
                       regions=MeterRegions(groups, lambda ids: ["Unassigned"] * len(ids)))
    for _ in range(600):  # puts into empty slots, some clears, meters never seen (9xxx)
        meter_id = int(rng.choice([*region_of, 9001, 9002]))
        slot = int(rng.integers(48))
        if store.get(meter_id, slot) is None:
            store.put(meter_id, slot, int(rng.integers(0, 3000)))
        elif rng.random() < 0.3:
            store.clear(meter_id, slot)
    values = np.where(rng.random((10, 48)) < 0.5, rng.integers(0, 900, (10, 48)), 0xFFFF)
    store.merge(np.arange(1030, 1040, dtype=np.int64), values.astype(np.uint16))
    store.move(1000, "East")
    region_of[1000] = "East"
    for name in ("West", "East", "North", "Unassigned"):
        energy, readings = store.region_slots(name)
        assert (energy.tolist(), readings.tolist()) == region_sums_by_hand(store, region_of, name)
    assert store.region_slots("Nowhere")[1].sum() == 0
    store.reset(date(2025, 2, 9))
    assert store.region_slots("West")[0].sum() == 0
    store.put(1001, 3, 250)
    assert store.region_slots("East")[0][3] == 250  # rows keep their region after a reset


def heard_by_hand(store: TodayStore) -> int:
    return len(store.totals()[0])


def test_meters_heard_today_are_counted_through_put_clear_merge_and_reset() -> None:
    import numpy as np

    rng = np.random.default_rng(11)
    store = make_store(capacity=2)
    for _ in range(400):  # grows the store; some meters lose their only reading again
        meter_id, slot = int(rng.integers(1, 30)), int(rng.integers(48))
        if store.get(meter_id, slot) is None:
            store.put(meter_id, slot, 100)
        elif rng.random() < 0.5:
            store.clear(meter_id, slot)
        assert store.heard_count() == heard_by_hand(store)
    values = np.full((12, 48), 0xFFFF, np.uint16)
    values[::2, 5] = 300  # six of twelve meters (half of them new) sent one reading
    store.merge(np.arange(20, 32, dtype=np.int64), values)
    assert store.heard_count() == heard_by_hand(store)
    store.reset(date(2025, 2, 9))
    assert store.heard_count() == 0
    store.put(3, 0, 10)
    store.put(3, 1, 10)
    assert store.heard_count() == 1
