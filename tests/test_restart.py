"""Starts that follow a change of settings: a start never fails because of data it holds.

Readings stored under a higher ``--max-reading-kwh`` are kept as stored (the ceiling
applies to new packets), in today's store, in the recovery JSON and after a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from metermatrix.recovery import load_snapshot, snapshot_path, write_snapshot
from metermatrix.service import MeterService
from metermatrix.settings import Settings
from metermatrix.today import TodayStore
from tests import dbviews
from tests.conftest import ServerProcess, send_time
from tests.test_routines import D1, Clock, at

#: The server's local time in these tests: half hours 0..27 of today are due.
CLOCK = "14:10"


def stored_readings(server: ServerProcess) -> set[tuple[int, int, int]]:
    """(meter_id, slot, energy_wh) of today in the database, read by a second connection."""
    with dbviews.connect(server.data_dir / "metermatrix.sqlite3") as db:
        return set(db.execute("SELECT meter_id, slot, energy_wh FROM readings WHERE day = ?",
                              (server.now().date().isoformat(),)))


def test_lowering_the_ceiling_below_a_stored_reading_keeps_it(make_server) -> None:
    server: ServerProcess = make_server(clock_at=CLOCK)
    day = server.now().date()
    assert server.post_packet(5, send_time(day, 3), 5.0)[0] == 201
    assert server.post_packet(5, send_time(day, 4), 0.3)[0] == 201
    assert server.post_packet(6, send_time(day, 27), 45.0)[0] == 201  # the last half hour due
    assert server.stop() == 0
    held = {(5, 3, 5000), (5, 4, 300), (6, 27, 45000)}
    assert stored_readings(server) == held

    server.extra = ["--max-reading-kwh", "2"]
    server.start()
    status, body = server.request("GET", "/api/v1/status")
    assert status == 200 and orjson.loads(body)["readings_today"] == 3
    status, answer = server.post_packet(7, send_time(day, 3), 2.5)
    assert status == 400 and "plausibility ceiling of 2 kWh" in str(answer["error"])
    assert server.post_packet(7, send_time(day, 4), 1.5)[0] == 201
    assert server.stop() == 0  # the recovery JSON is written with the readings as stored
    log = server.log_path.read_text()
    assert "Traceback" not in log and "not written" not in log
    held.add((7, 4, 1500))
    assert stored_readings(server) == held
    assert set(load_snapshot(snapshot_path(server.data_dir / "recovery", day))) == held

    server.start()  # and once more: the file the last stop wrote is no obstacle either
    assert orjson.loads(server.request("GET", "/api/v1/status")[1])["readings_today"] == 4


def test_recovery_reading_above_a_lowered_ceiling_is_merged_as_stored(tmp_path: Path) -> None:
    """A recovery file holds acknowledged readings: one the database lacks is stored as it
    was acknowledged, even above today's ceiling."""
    settings = Settings(data_dir=tmp_path / "data", demo=False, dashboards=False,
                        max_reading_kwh=2.0)
    earlier = TodayStore(D1, max_reading_wh=50_000)
    earlier.put(42, 0, 5000)
    earlier.put(42, 1, 700)
    write_snapshot(earlier, snapshot_path(settings.recovery_dir, D1), "another database")

    async def main() -> tuple[int | None, int | None]:
        service = MeterService(settings, clock=Clock(at(D1, 10, 0)))
        await service.start()
        try:
            assert service.collector is not None
            store = service.collector.store
            return store.get(42, 0), store.get(42, 1)
        finally:
            await service.stop()

    assert asyncio.run(main()) == (5000, 700)
    with dbviews.connect(settings.data_dir / "metermatrix.sqlite3") as db:
        assert db.execute("SELECT slot, energy_wh FROM readings ORDER BY slot").fetchall() == [
            (0, 5000), (1, 700)]


@pytest.mark.parametrize("member", [
    b'"42": {"00:31": 1e308}', b'"42": {"00:31": -0.5}', b'"42": {"00:31": 70}',
    b'"42": {"00:31": true}', b'"-5": {"00:31": 0.5}', b'"4200000000000": {"00:31": 0.5}',
    b'"42": {"99:99": 0.5}', b'"42": {"00:31": "0.5"}'])
def test_a_recovery_json_out_of_range_is_moved_aside_and_stores_nothing(
        tmp_path: Path, member: bytes) -> None:
    settings = Settings(data_dir=tmp_path / "data", demo=False, dashboards=False)
    path = snapshot_path(settings.recovery_dir, D1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{' + member + b'}')

    async def main() -> int:
        service = MeterService(settings, clock=Clock(at(D1, 10, 0)))
        await service.start()
        try:
            assert service.collector is not None
            return service.collector.store.reading_count()
        finally:
            await service.stop()

    assert asyncio.run(main()) == 0
    assert path.with_name(path.name + ".bad").read_bytes() == b'{' + member + b'}'
    with dbviews.connect(settings.data_dir / "metermatrix.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM readings").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM meters").fetchone() == (0,)
