"""A data folder made by release 0.1.0 (schema 1) upgrades in place on first start, and
``metermatrix migrate`` copies it into PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from metermatrix.storage import UNASSIGNED, DailyTotal, Reading, Storage, open_storage
from metermatrix.storage.migrate import SCHEMA_VERSION
from metermatrix.storage.to_postgres import MigrationError, migrate_to_postgres

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"


def _old(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(RELEASE / "metermatrix.sqlite3", data_dir)
    return data_dir, sqlite3.connect(data_dir / "metermatrix.sqlite3")


def test_every_reading_and_total_of_an_old_data_folder_survives_the_upgrade(tmp_path) -> None:
    data_dir, old = _old(tmp_path)
    readings = sorted(old.execute("SELECT meter_id, day, slot, energy_wh FROM readings"))
    totals = sorted(old.execute("SELECT meter_id, day, energy_wh, readings FROM daily_totals"))
    regions = sorted(old.execute("SELECT * FROM region_daily"))
    closed = [day for (day,) in old.execute("SELECT day FROM closed_days ORDER BY day")]
    meters = sorted(old.execute("SELECT meter_id, name, fin_no, region FROM meters"))
    old.close()
    assert len(readings) > 2000 and len(totals) > 5000  # the fixture is not empty

    storage = open_storage(data_dir)
    try:
        days = sorted({date.fromisoformat(day) for _, day, _, _ in readings})
        ids = sorted({meter_id for meter_id, *_ in readings})
        upgraded = sorted((r.meter_id, r.day.isoformat(), r.slot, r.energy_wh)
                          for r in storage.readings_between(ids, days[0], days[-1]))
        assert upgraded == readings
        first, last = date.fromisoformat(min(t[1] for t in totals)), date.fromisoformat(
            max(t[1] for t in totals))
        assert sorted((t.meter_id, t.day.isoformat(), t.energy_wh, t.readings)
                      for t in storage.daily_totals_between(None, first, last)) == totals
        assert sorted((r.region, r.day.isoformat(), r.energy_wh, r.meters, r.readings)
                      for r in storage.region_days_between(first, last)) == regions
        assert [day.isoformat() for day in storage.closed_days()] == closed
        for day in storage.closed_days():  # the totals columns of schema 4, of every day
            ids, energy, counts = storage.day_total_columns(day)
            assert list(zip(ids.tolist(), energy.tolist(), counts.tolist(), strict=True)) == [
                (t.meter_id, t.energy_wh, t.readings)
                for t in storage.daily_totals_between(None, day, day)]
        assert sorted((m.meter_id, m.name, m.fin_no, m.region)
                      for m in storage.list_meters()) == meters
        assert storage.resident_password_hash(999999999) is not None
        assert storage.days_with_open_readings(before=date(2026, 12, 3)) == [date(2026, 12, 2)]
    finally:
        storage.close()
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert not tables & {"readings", "v1_readings", "v1_daily_totals"}
    db.close()


def test_an_upgraded_database_keeps_working_and_reopens(tmp_path) -> None:
    data_dir, old = _old(tmp_path)
    old.close()
    storage = open_storage(data_dir)
    day = date(2026, 12, 1)
    with storage.transaction():
        assert storage.store_reading(Reading(555555555, day, 3, 5)) == "stored"
        assert storage.store_reading(Reading(999999999, day, 3, 103)) == "duplicate"
    before = storage.daily_totals_between([555555555], day, day)
    storage.close()
    again = open_storage(data_dir)
    assert again.daily_totals_between([555555555], day, day) == before
    assert isinstance(before[0], DailyTotal)
    again.close()


def test_an_upgrade_interrupted_after_its_first_step_is_finished_on_the_next_start(
        tmp_path) -> None:
    data_dir, old = _old(tmp_path)
    count = old.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    old.execute("ALTER TABLE readings RENAME TO v1_readings")  # as step 1 leaves it
    old.execute("ALTER TABLE daily_totals RENAME TO v1_daily_totals")
    old.execute("DROP INDEX readings_day")
    old.execute("DROP INDEX daily_totals_day")
    old.commit()
    old.close()
    storage = open_storage(data_dir)
    days = storage.days_with_readings()
    total = sum(len(list(storage.readings_of_day(day))) for day in days)
    storage.close()
    assert total == count


# -- metermatrix migrate: a data folder into PostgreSQL ------------------------------------
def _content(storage: Storage) -> dict[str, object]:
    """Everything a migration must carry over, read through the Storage interface."""
    closed = storage.closed_days()
    days = storage.days_with_open_readings(before=date(2100, 1, 1)) + closed
    first, last = min(days), max(days)
    meters = storage.list_meters()
    return {
        "meters": meters, "closed": closed,
        "totals": storage.daily_totals_between(None, first, last),
        "regions": storage.region_days_between(first, last),
        "readings": sorted((r.meter_id, r.day, r.slot, r.energy_wh) for r in
                           storage.readings_between([m.meter_id for m in meters], first, last)),
        "slots": storage.region_slot_energy(meters[0].region or UNASSIGNED, first, last),
        "residents": [storage.resident_password_hash(m.meter_id) for m in meters],
        "open": storage.days_with_open_readings(before=date(2100, 1, 1)),
    }


def test_migrate_copies_an_old_data_folder_into_postgres_with_counts_checked(
        tmp_path: Path, pg_database: str) -> None:
    data_dir, old = _old(tmp_path)
    old.close()
    command = Path(sys.executable).parent / "metermatrix"
    done = subprocess.run([command, "migrate", "--from", data_dir, "--to", pg_database],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "counts match" in done.stdout and "resumed" not in done.stdout
    source, target = open_storage(data_dir), open_storage(data_dir, database=pg_database)
    try:
        assert _content(target) == _content(source)
        assert target.database_id() != source.database_id()  # a copy, told apart
    finally:
        source.close()
        target.close()
    again = subprocess.run([command, "migrate", "--from", data_dir, "--to", pg_database],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resumed" in again.stdout and " 0 steps" in again.stdout


def test_migrate_stopped_half_way_carries_on_where_it_stopped(tmp_path: Path,
                                                              pg_database: str) -> None:
    data_dir, old = _old(tmp_path)
    old.close()
    first = migrate_to_postgres(data_dir, pg_database, max_steps=3)
    assert (first.steps_done, first.finished) == (3, False)
    rest = migrate_to_postgres(data_dir, pg_database)
    assert rest.finished and rest.steps_skipped == 3 and rest.steps_done > 3
    assert rest.counts is not None and all(a == b for _, a, b in rest.counts)


def test_migrate_into_a_database_holding_other_data_fails_on_the_counts(
        tmp_path: Path, pg_database: str) -> None:
    data_dir, old = _old(tmp_path)
    old.close()
    other = open_storage(data_dir, database=pg_database)
    other.add_meters([123])
    other.close()
    with pytest.raises(MigrationError, match="meters: .* in PostgreSQL"):
        migrate_to_postgres(data_dir, pg_database)
