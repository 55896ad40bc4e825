"""The seed's master database JSON (1.4) with region: import, export, round trip."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pytest

from metermatrix.demo import DEMO_FILE
from metermatrix.masterdb import MasterFileError, export_master, import_master, read_master
from metermatrix.readingsfile import write_readings
from metermatrix.slots import SLOT_LABELS
from metermatrix.storage import MeterRecord, Reading, Storage, open_storage

SEED = {
    "999999999": {
        "name": "Aashima", "fin_no": "A3389127I", "region": "West",
        "previous_day": {"00:31": 8.33, "00:01": 4.73, "01:31": 8.7, "23:31": 2.59},
        "2025-02-11": 187.14, "2025-01-23": 177.93, "2025-01-22": 219.14, "2024-12-14": 198.41,
    },
    "555555555": {
        "name": "Carlos", "fin_no": "A1234567I", "region": "East",
        "previous_day": {"00:31": 5.99, "22:01": 3.64, "23:31": 6.74},
        "2025-02-11": 112.96, "2025-02-10": 158.12,
    },
}


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(tmp_path / "data")
    yield store
    store.close()


def write(path: Path, data: object) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def count(data_dir: Path, table: str) -> int:
    with sqlite3.connect(data_dir / "metermatrix.sqlite3") as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_seed_example_imports_owners_totals_and_previous_day(tmp_path: Path,
                                                             storage: Storage) -> None:
    assert import_master(storage, write(tmp_path / "m.json", SEED)) == 2
    assert storage.get_meter(999999999) == MeterRecord(999999999, "Aashima", "A3389127I", "West")
    totals = storage.daily_totals_between([999999999], date(2024, 1, 1), date(2026, 1, 1))
    assert [(t.day, t.energy_wh) for t in totals] == [
        (date(2024, 12, 14), 198_410), (date(2025, 1, 22), 219_140),
        (date(2025, 1, 23), 177_930), (date(2025, 2, 11), 187_140)]
    readings = storage.readings_between([999999999], date(2025, 2, 11), date(2025, 2, 11))
    assert readings == [Reading(999999999, date(2025, 2, 11), 0, 8330),
                        Reading(999999999, date(2025, 2, 11), 2, 8700),
                        Reading(999999999, date(2025, 2, 11), 46, 2590),
                        Reading(999999999, date(2025, 2, 11), 47, 4730)]
    assert date(2025, 2, 10) in storage.closed_days()


def test_export_is_the_seed_format_with_region(tmp_path: Path, storage: Storage) -> None:
    import_master(storage, write(tmp_path / "m.json", SEED))
    exported = orjson.loads(export_master(storage))
    assert exported["999999999"] == SEED["999999999"]
    assert exported["555555555"]["region"] == "East"
    assert exported["555555555"]["2025-02-10"] == 158.12
    assert list(exported["999999999"])[:4] == ["name", "fin_no", "region", "previous_day"]
    assert list(exported["999999999"])[4:] == sorted(list(exported["999999999"])[4:],
                                                     reverse=True)


def test_shift_moves_every_date(tmp_path: Path, storage: Storage) -> None:
    import_master(storage, write(tmp_path / "m.json", SEED), shift_days=10)
    assert storage.closed_days()[-1] == date(2025, 2, 21)
    assert storage.readings_between([555555555], date(2025, 2, 21), date(2025, 2, 21))


def test_demo_file_round_trips_through_export_and_import(tmp_path: Path,
                                                         storage: Storage) -> None:
    assert import_master(storage, DEMO_FILE) == 42
    first = export_master(storage)
    again = open_storage(tmp_path / "again")
    try:
        import_master(again, write(tmp_path / "export.json", orjson.loads(first)))
        assert export_master(again) == first
    finally:
        again.close()
    assert orjson.loads(first) == read_master(DEMO_FILE)


def test_export_names_meters_with_nine_digits(tmp_path: Path, storage: Storage) -> None:
    with storage.transaction():
        storage.add_meters([42])
        storage.add_readings([Reading(42, date(2025, 2, 8), 47, 500)])
    storage.close_day_from_readings(date(2025, 2, 8))
    exported = orjson.loads(export_master(storage))
    assert exported == {"000000042": {"name": None, "fin_no": None, "region": None,
                                      "previous_day": {SLOT_LABELS[47]: 0.5},
                                      "2025-02-08": 0.5}}


def test_empty_database_exports_an_empty_object(storage: Storage) -> None:
    assert orjson.loads(export_master(storage)) == {}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([1, 2], "expected an object keyed by meter id"),
        ({"abc": {}}, "not a meter id"),
        ({"0": {}}, "not a meter id"),
        ({"1000000000": {}}, "not a meter id"),
        ({"999999999": 5}, "not a meter id"),
    ],
)
def test_file_of_the_wrong_shape_is_refused(tmp_path: Path, data: object, reason: str) -> None:
    with pytest.raises(MasterFileError, match=reason):
        read_master(write(tmp_path / "m.json", data))


def test_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(MasterFileError, match="not valid JSON"):
        read_master(path)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "A", "2025-02-11": -1.0},
        {"name": "A", "2025-02-11": "lots"},
        {"name": "A", "previous_day": {"00:31": 1.0}},
        {"name": "A", "previous_day": {"00:30": 1.0}, "2025-02-11": 1.0},
        {"name": "A", "yesterday": 1.0},
    ],
)
def test_bad_entry_stores_nothing(tmp_path: Path, storage: Storage, entry: object) -> None:
    data = {"555555555": SEED["555555555"], "999999999": entry}
    with pytest.raises((MasterFileError, ValueError, KeyError)):
        import_master(storage, write(tmp_path / "m.json", data))
    for table in ("meters", "day_readings", "daily_totals", "closed_days"):
        assert count(tmp_path / "data", table) == 0, table


def test_import_into_an_unclosed_day_totals_its_stored_readings(tmp_path: Path,
                                                                storage: Storage) -> None:
    """Marking the day closed must leave no stored reading out of its totals."""
    day = date(2025, 3, 20)
    with storage.transaction():
        storage.add_meters([7])
        storage.add_readings([Reading(7, day, 0, 300), Reading(7, day, 5, 450)])
    import_master(storage, write(tmp_path / "m.json", {"000000008": {"2025-03-20": 12.5}}))
    assert storage.closed_days() == [day]
    assert {(t.meter_id, t.energy_wh, t.readings)
            for t in storage.daily_totals_between(None, day, day)} == {(7, 750, 2),
                                                                       (8, 12500, 48)}


def test_import_of_a_total_other_than_its_stored_readings_is_refused(tmp_path: Path,
                                                                     storage: Storage) -> None:
    day = date(2025, 3, 20)
    with storage.transaction():
        storage.add_meters([7])
        storage.add_readings([Reading(7, day, 0, 300)])
    storage.close_day_from_readings(day)
    with pytest.raises(MasterFileError, match="differs from the 0.3 kWh of the 1 readings"):
        import_master(storage, write(tmp_path / "m.json", {"000000007": {"2025-03-20": 9.0}}))
    assert [(t.energy_wh, t.readings) for t in storage.daily_totals_between([7], day, day)] == [
        (300, 1)]
    import_master(storage, write(tmp_path / "m.json", {"000000007": {"2025-03-20": 0.3}}))
    assert [(t.energy_wh, t.readings) for t in storage.daily_totals_between([7], day, day)] == [
        (300, 1)]  # the same figure again: the readings' total stands


def test_readings_of_a_day_must_sum_to_its_total(tmp_path: Path, storage: Storage) -> None:
    readings = tmp_path / "readings.csv.gz"
    day_wh = np.full(48, 3294)
    day_wh[-1] = 158_120 - 47 * 3294  # the file's 158.12 kWh
    write_readings(readings, [(555555555, date(2025, 2, 10), day_wh)])
    import_master(storage, write(tmp_path / "m.json", SEED), readings=readings)
    assert date(2025, 2, 10) in storage.closed_days()
    assert len(storage.readings_between([555555555], date(2025, 2, 10), date(2025, 2, 10))) == 48
    wrong = open_storage(tmp_path / "wrong")
    write_readings(readings, [(555555555, date(2025, 2, 10), np.full(48, 3000))])
    with pytest.raises(MasterFileError, match="differs from the 144.0 kWh of the 48 readings"):
        import_master(wrong, write(tmp_path / "m.json", SEED), readings=readings)
    write_readings(readings, [(123456789, date(2025, 2, 10), np.full(48, 3000))])
    with pytest.raises(MasterFileError, match="meters the master file lacks"):
        import_master(wrong, write(tmp_path / "m.json", SEED), readings=readings)
    assert wrong.list_meters() == []
    wrong.close()
