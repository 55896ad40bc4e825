"""Fleets of meters: read from a master-database file or made up."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from metermatrix.fleet import (
    REGION_WEIGHTS,
    REGIONS,
    FleetError,
    Meter,
    load_fleet,
    synthetic_fleet,
)

FIN_PATTERN = re.compile(r"[FGM]\d{7}[A-Z]")


def write_json(path: Path, data: object) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def record(name: str, region: str) -> dict[str, object]:
    return {
        "name": name,
        "fin_no": "A3389127I",
        "region": region,
        "previous_day": {"00:31": 0.25, "00:01": 0.5},
        "2026-11-26": 0.75,
        "2026-11-25": 11.204,
    }


def test_load_fleet_reads_meters_sorted_by_id(tmp_path: Path) -> None:
    path = write_json(tmp_path / "masterDB.json", {
        "999999999": record("Aashima", "West"),
        "555555555": record("Carlos", "East"),
    })
    assert load_fleet(path) == [
        Meter(555_555_555, "Carlos", "A3389127I", "East"),
        Meter(999_999_999, "Aashima", "A3389127I", "West"),
    ]


def test_load_fleet_reads_a_seed_file_without_regions(tmp_path: Path) -> None:
    seed_record = record("Aashima", "West")
    del seed_record["region"]
    path = write_json(tmp_path / "masterDB.json", {"999999999": seed_record})
    assert load_fleet(path) == [Meter(999_999_999, "Aashima", "A3389127I", None)]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("12345", record("Short", "East"), "nine digits"),
    ("99999999x", record("Letters", "East"), "nine digits"),
    ("999999999", ["not", "a", "record"], "JSON object"),
    ("999999999", {"region": "East", "fin_no": "F1234567K"}, "name"),
    ("999999999", record("Nowhere", "Atlantis"), "Atlantis"),
    ("999999999", record("", "East"), "name"),
])
def test_load_fleet_refuses_malformed_meters(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    path = write_json(tmp_path / "masterDB.json", {key: value})
    with pytest.raises(FleetError, match=message):
        load_fleet(path)


def test_load_fleet_refuses_a_file_that_is_not_a_json_object(tmp_path: Path) -> None:
    not_json = tmp_path / "broken.json"
    not_json.write_text("{\"999999999\": ")
    with pytest.raises(FleetError, match="not valid JSON"):
        load_fleet(not_json)
    with pytest.raises(FleetError, match="JSON object"):
        load_fleet(write_json(tmp_path / "list.json", [1, 2]))


def test_synthetic_fleet_has_unique_nine_digit_ids_in_order() -> None:
    fleet = synthetic_fleet(5000, seed=3)
    ids = [meter.meter_id for meter in fleet]
    assert len(fleet) == 5000
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    assert all(100_000_000 <= meter_id <= 999_999_999 for meter_id in ids)


def test_synthetic_fleet_is_reproducible_from_its_seed() -> None:
    assert synthetic_fleet(50, seed=3) == synthetic_fleet(50, seed=3)
    assert synthetic_fleet(50, seed=3) != synthetic_fleet(50, seed=4)
    assert synthetic_fleet(0, seed=3) == []


def test_synthetic_fleet_regions_follow_household_shares() -> None:
    counts = Counter(meter.region for meter in synthetic_fleet(20_000, seed=5))
    assert set(counts) == set(REGIONS)
    for region, weight in zip(REGIONS, REGION_WEIGHTS, strict=True):
        assert counts[region] / 20_000 == pytest.approx(weight, abs=0.015)


def test_synthetic_fleet_has_plausible_names_and_fins() -> None:
    fleet = synthetic_fleet(2000, seed=6)
    assert all(FIN_PATTERN.fullmatch(meter.fin_no) for meter in fleet)
    assert {meter.fin_no[0] for meter in fleet} == {"F", "G", "M"}
    assert all(meter.name.strip() == meter.name and " " in meter.name for meter in fleet)
    assert len({meter.name for meter in fleet}) > 300


def test_synthetic_fleet_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError):
        synthetic_fleet(-1, seed=1)
