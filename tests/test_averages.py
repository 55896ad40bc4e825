"""The one average-per-meter definition, on a real SQLite database with a gappy meter."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from metermatrix.averages import (
    DEFINITION,
    average_per_meter_kwh,
    region_day_averages_kwh,
    region_slot_averages_kwh,
)
from metermatrix.storage import MeterRecord, Reading, SQLiteStorage

D1, D2 = date(2025, 2, 8), date(2025, 2, 9)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SQLiteStorage]:
    store = SQLiteStorage(tmp_path / "metermatrix.sqlite3")
    for meter_id in (1, 2):
        store.save_meter(MeterRecord(meter_id, f"M{meter_id}", None, "East"))
    yield store
    store.close()


def test_a_half_hour_is_its_energy_over_the_meters_that_reported() -> None:
    assert average_per_meter_kwh([300, 200], [2, 1], 1).tolist() == [0.15, 0.2]


def test_no_reading_is_nan_not_zero() -> None:
    assert math.isnan(float(average_per_meter_kwh(0, 0, 48)))


def test_a_gappy_meter_counts_for_the_half_hours_it_reported(storage: SQLiteStorage) -> None:
    # meter 1 reports all 48 half hours at 100 Wh; meter 2 only 12 of them at 100 Wh
    storage.close_day(D1, [(1, 4800, 48), (2, 1200, 12)])
    averages = region_day_averages_kwh(storage.region_days_between(D1, D1), "East")
    # a whole-meter average would say 3.0 kWh, a zero-filled one 3.0 too; 4.8 is what
    # a meter that reported every half hour used
    assert averages == {D1: pytest.approx(4.8)}


def test_day_average_is_the_sum_of_its_half_hour_averages(storage: SQLiteStorage) -> None:
    readings = [Reading(1, D2, slot, 100 + slot) for slot in range(48)]
    readings += [Reading(2, D2, slot, 50) for slot in range(0, 48, 2)]
    with storage.transaction():
        storage.add_readings(readings)
    slots = region_slot_averages_kwh(storage.region_slot_energy("East", D2, D2))
    assert len(slots) == 48
    assert slots[(D2, 1)] == pytest.approx(0.101)
    assert slots[(D2, 0)] == pytest.approx((100 + 50) / 2 / 1000)
    energy = sum(r.energy_wh for r in readings)
    day = average_per_meter_kwh(energy, len(readings), 48)
    # equal counts per slot would make the two equal; unequal counts keep them close
    assert float(day) == pytest.approx(energy / len(readings) * 48 / 1000)
    assert abs(float(day) - sum(slots.values())) / float(day) < 0.2


def test_arrays_keep_their_shape_and_the_sentence_is_stated() -> None:
    out = average_per_meter_kwh(np.array([[48, 0]]), np.array([[48, 0]]), np.array([[48, 48]]))
    assert out.shape == (1, 2) and out[0, 0] == pytest.approx(0.048) and np.isnan(out[0, 1])
    assert "half-hour readings" in DEFINITION
