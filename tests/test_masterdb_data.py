"""The committed demo master database: reproducible and self-consistent."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pytest

from metermatrix.fleet import REGIONS, load_fleet
from metermatrix.loadshape import DEFAULT_SEED, day_energy_wh
from metermatrix.readingsfile import read_readings
from metermatrix.slots import SLOT_LABELS
from metermatrix.storage.packing import MISSING

ROOT = Path(__file__).resolve().parents[1]
MASTERDB = ROOT / "testing_data" / "masterDB.json"
READINGS = ROOT / "testing_data" / "readings.csv.gz"
LAST_DAY = "2026-11-26"


@pytest.fixture(scope="module")
def masterdb() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = orjson.loads(MASTERDB.read_bytes())
    return data


def totals_of(record: dict[str, object]) -> dict[str, float]:
    return {key: value for key, value in record.items() if key[:1].isdigit()}  # type: ignore[misc]


def to_wh(energy_kwh: float) -> int:
    return round(energy_kwh * 1000)


def test_committed_files_are_what_the_script_writes(tmp_path: Path) -> None:
    output, readings = tmp_path / "masterDB.json", tmp_path / "readings.csv.gz"
    subprocess.run(
        [sys.executable, str(ROOT / "testing_data" / "make_masterdb.py"), "--output", str(output),
         "--readings", str(readings)],
        check=True, cwd=tmp_path, timeout=120,
    )
    assert output.read_bytes() == MASTERDB.read_bytes()
    assert readings.read_bytes() == READINGS.read_bytes()


def test_every_total_has_its_48_readings_and_is_their_sum(
    masterdb: dict[str, dict[str, object]],
) -> None:
    by_day = read_readings(READINGS)
    found = {(int(meter_id), day): row for day, (ids, rows) in by_day.items()
             for meter_id, row in zip(ids.tolist(), rows, strict=True)}
    expected = {(int(key), date.fromisoformat(day)): total
                for key, record in masterdb.items() for day, total in totals_of(record).items()}
    assert set(found) == set(expected)
    for key, total_kwh in expected.items():
        assert (found[key] != MISSING).all(), key
        assert int(found[key].sum(dtype=np.int64)) == to_wh(total_kwh), key
    last = date.fromisoformat(LAST_DAY)
    for key, record in masterdb.items():
        previous = [to_wh(v) for v in record["previous_day"].values()]  # type: ignore[attr-defined]
        assert found[(int(key), last)].tolist() == previous


def test_seed_residents_are_present(masterdb: dict[str, dict[str, object]]) -> None:
    assert masterdb["999999999"]["name"] == "Aashima"
    assert masterdb["999999999"]["fin_no"] == "A3389127I"
    assert masterdb["555555555"]["name"] == "Carlos"
    assert masterdb["555555555"]["fin_no"] == "A1234567I"


def test_meters_cover_all_five_regions(masterdb: dict[str, dict[str, object]]) -> None:
    fleet = load_fleet(MASTERDB)
    assert len(fleet) == len(masterdb) >= 40
    assert {meter.region for meter in fleet} == set(REGIONS)


def test_previous_day_has_every_slot_and_sums_to_the_last_total(
    masterdb: dict[str, dict[str, object]],
) -> None:
    for meter_id, record in masterdb.items():
        previous_day = record["previous_day"]
        assert isinstance(previous_day, dict)
        assert list(previous_day) == list(SLOT_LABELS), meter_id
        assert sum(to_wh(v) for v in previous_day.values()) == to_wh(totals_of(record)[LAST_DAY])


def test_values_are_kwh_with_at_most_three_decimals(
    masterdb: dict[str, dict[str, object]],
) -> None:
    for record in masterdb.values():
        values = [*totals_of(record).values(), *record["previous_day"].values()]  # type: ignore[attr-defined]
        assert all(isinstance(v, float | int) and v > 0 for v in values)
        assert all(abs(v * 1000 - to_wh(v)) < 1e-6 for v in values)


def test_daily_totals_are_sums_of_the_load_model(masterdb: dict[str, dict[str, object]]) -> None:
    for meter_id in ("999999999", "555555555", sorted(masterdb)[5]):
        for day_text, total_kwh in list(totals_of(masterdb[meter_id]).items())[::17]:
            model_wh = day_energy_wh(int(meter_id), date.fromisoformat(day_text), DEFAULT_SEED)
            assert to_wh(total_kwh) == int(model_wh.sum())


def test_about_120_days_with_a_few_gaps(masterdb: dict[str, dict[str, object]]) -> None:
    day_counts = [len(totals_of(record)) for record in masterdb.values()]
    assert max(day_counts) == 120
    assert 2 <= sum(count < 120 for count in day_counts) <= 8
    assert min(day_counts) >= 110
    assert all(LAST_DAY in totals_of(record) for record in masterdb.values())
    assert all(min(totals_of(record)) == "2026-07-30" for record in masterdb.values())


def test_daily_totals_are_household_sized(masterdb: dict[str, dict[str, object]]) -> None:
    totals_kwh = np.array([v for r in masterdb.values() for v in totals_of(r).values()])
    assert 8 < np.percentile(totals_kwh, 10) and np.percentile(totals_kwh, 90) < 30
