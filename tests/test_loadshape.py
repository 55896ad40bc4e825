"""The household load model: deterministic, realistic in size and in daily shape."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from metermatrix.loadshape import day_energy_wh, fleet_day_energy_wh, half_hour_energy_wh
from metermatrix.slots import SLOTS_PER_DAY

WEDNESDAY = date(2026, 11, 25)
SATURDAY = date(2026, 11, 28)
SEED = 2026


@pytest.fixture(scope="module")
def meter_ids() -> np.ndarray:
    return np.arange(100_000_000, 100_000_000 + 4000 * 7919, 7919)


def mean_profile_kwh(meter_ids: np.ndarray, day: date) -> np.ndarray:
    profile_kwh: np.ndarray = fleet_day_energy_wh(meter_ids, day, SEED).mean(axis=0) / 1000
    return profile_kwh


def hours(start_h: float, end_h: float) -> slice:
    return slice(int(start_h * 2), int(end_h * 2))


def test_single_readings_match_day_and_fleet_rows() -> None:
    ids = np.array([999_999_999, 555_555_555, 123_456_789])
    fleet = fleet_day_energy_wh(ids, WEDNESDAY, SEED)
    assert fleet.shape == (3, SLOTS_PER_DAY)
    for row, meter_id in zip(fleet, ids, strict=True):
        assert np.array_equal(day_energy_wh(int(meter_id), WEDNESDAY, SEED), row)
        assert [half_hour_energy_wh(int(meter_id), WEDNESDAY, s, SEED) for s in (0, 17, 47)] == [
            row[0], row[17], row[47]]


def test_reading_does_not_depend_on_batch_or_order(meter_ids: np.ndarray) -> None:
    ids = meter_ids[:500]
    shuffled = np.random.default_rng(1).permutation(ids)
    together = fleet_day_energy_wh(ids, WEDNESDAY, SEED)
    apart = fleet_day_energy_wh(shuffled, WEDNESDAY, SEED)
    order = np.argsort(shuffled)
    assert np.array_equal(together, apart[order])
    assert np.array_equal(together[:7], fleet_day_energy_wh(ids[:7], WEDNESDAY, SEED))


def test_seed_meter_and_day_all_change_the_readings() -> None:
    base = day_energy_wh(999_999_999, WEDNESDAY, SEED)
    assert not np.array_equal(base, day_energy_wh(999_999_999, WEDNESDAY, SEED + 1))
    assert not np.array_equal(base, day_energy_wh(999_999_998, WEDNESDAY, SEED))
    assert not np.array_equal(base, day_energy_wh(999_999_999, WEDNESDAY + timedelta(1), SEED))


def test_readings_are_positive_integer_watt_hours(meter_ids: np.ndarray) -> None:
    energy_wh = fleet_day_energy_wh(meter_ids, WEDNESDAY, SEED)
    assert energy_wh.dtype == np.int64
    assert energy_wh.min() >= 1
    assert isinstance(half_hour_energy_wh(999_999_999, WEDNESDAY, 0, SEED), int)


def test_daily_totals_and_half_hours_are_household_sized(meter_ids: np.ndarray) -> None:
    energy_wh = fleet_day_energy_wh(meter_ids, WEDNESDAY, SEED)
    daily_kwh = energy_wh.sum(axis=1) / 1000
    assert 10 < np.median(daily_kwh) < 18
    assert np.percentile(daily_kwh, 5) > 6 and np.percentile(daily_kwh, 95) < 32
    half_hour_kwh = energy_wh / 1000
    assert np.percentile(half_hour_kwh, 10) > 0.04 and np.percentile(half_hour_kwh, 90) < 1.2
    assert half_hour_kwh.max() < 5


def test_weekday_has_night_trough_morning_and_evening_peaks(meter_ids: np.ndarray) -> None:
    profile = mean_profile_kwh(meter_ids, WEDNESDAY)
    trough = int(np.argmin(profile))
    assert 2 * 2 <= trough < 6 * 2
    morning = profile[hours(6.5, 9)].max()
    assert morning > 1.5 * profile[hours(10, 12)].mean()
    assert morning > 1.5 * profile[trough]
    evening_peak = int(np.argmax(profile))
    assert 19 * 2 <= evening_peak < 24 * 2
    assert profile[hours(19, 23)].mean() > 2 * profile[hours(10, 16)].mean()


def test_weekend_mornings_are_later_and_middays_busier(meter_ids: np.ndarray) -> None:
    weekday = mean_profile_kwh(meter_ids, WEDNESDAY)
    weekend = mean_profile_kwh(meter_ids, SATURDAY)
    morning = hours(5, 11)
    assert np.argmax(weekend[morning]) > np.argmax(weekday[morning])
    assert weekend[hours(11, 16)].mean() > 1.15 * weekday[hours(11, 16)].mean()


def test_daily_totals_vary_from_day_to_day() -> None:
    days = [WEDNESDAY + timedelta(days=offset) for offset in range(14)]
    totals_wh = [int(day_energy_wh(999_999_999, day, SEED).sum()) for day in days]
    assert len(set(totals_wh)) == len(totals_wh)
    assert max(totals_wh) > 1.1 * min(totals_wh)


def test_households_differ_in_scale(meter_ids: np.ndarray) -> None:
    daily_kwh = fleet_day_energy_wh(meter_ids, WEDNESDAY, SEED).sum(axis=1) / 1000
    assert np.percentile(daily_kwh, 90) > 1.8 * np.percentile(daily_kwh, 10)


@pytest.mark.parametrize("slot", [-1, 48])
def test_half_hour_refuses_a_slot_outside_the_day(slot: int) -> None:
    with pytest.raises(ValueError, match="slot"):
        half_hour_energy_wh(999_999_999, WEDNESDAY, slot, SEED)
