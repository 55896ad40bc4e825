"""The routines of seed section 2 with an injected clock: day close, catch-up, recovery.

The service tests run a real MeterService (writer thread, SQLite file in tmp_path) on a
real event loop; only the clock is chosen by the test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from metermatrix.collector import Receipt
from metermatrix.packets import parse_packet
from metermatrix.recovery import snapshot_path
from metermatrix.routines import (
    catch_up,
    next_close,
    open_day_for,
    prune_snapshots,
    snapshot_in_child,
    wait_for_child,
)
from metermatrix.service import MeterService
from metermatrix.settings import Settings
from metermatrix.slots import interval_start
from metermatrix.storage import Reading, open_storage
from metermatrix.today import TodayStore
from tests import dbviews

D0, D1, D2 = date(2025, 2, 7), date(2025, 2, 8), date(2025, 2, 9)


def settings_for(data_dir: Path, timezone: str = "UTC", **changes: Any) -> Settings:
    return Settings(data_dir=data_dir, timezone=timezone, demo=False, dashboards=False,
                    **changes)


def at(day: date, hour: int, minute: int, timezone: str = "UTC") -> datetime:
    return datetime.combine(day, datetime.min.time()).replace(
        hour=hour, minute=minute, tzinfo=settings_for(Path(), timezone).tz)


# -- pure routines ---------------------------------------------------------------------
def test_open_day_is_today_until_the_close_then_tomorrow() -> None:
    settings = settings_for(Path())
    assert open_day_for(at(D1, 0, 0), settings) == D1
    assert open_day_for(at(D1, 23, 44), settings) == D1
    assert open_day_for(at(D1, 23, 45), settings) == D2
    assert open_day_for(at(D1, 23, 59), settings) == D2


def test_open_day_follows_the_utility_time_zone() -> None:
    settings = settings_for(Path(), "Asia/Singapore")
    assert open_day_for(datetime(2025, 2, 8, 15, 44, tzinfo=UTC), settings) == D1  # 23:44 SGT
    assert open_day_for(datetime(2025, 2, 8, 15, 45, tzinfo=UTC), settings) == D2  # 23:45 SGT


def test_close_time_is_configurable() -> None:
    settings = settings_for(Path(), close_time="23:55")
    assert open_day_for(at(D1, 23, 50), settings) == D1
    assert next_close(at(D1, 23, 50), settings) == at(D1, 23, 55)


def test_next_close_is_strictly_after_now() -> None:
    settings = settings_for(Path())
    assert next_close(at(D1, 12, 0), settings) == at(D1, 23, 45)
    assert next_close(at(D1, 23, 45), settings) == at(D2, 23, 45)
    singapore = settings_for(Path(), "Asia/Singapore")
    assert next_close(datetime(2025, 2, 8, 12, tzinfo=UTC), singapore) == datetime(
        2025, 2, 8, 15, 45, tzinfo=UTC)  # 20:00 SGT: the close is at 23:45 SGT the same day


def test_catch_up_closes_unclosed_days_before_the_open_day(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    try:
        with storage.transaction():
            storage.add_meters([1])
            storage.add_readings([Reading(1, D0, 0, 10), Reading(1, D0, 1, 15),
                                  Reading(1, D1, 0, 20), Reading(1, D2, 0, 30)])
        assert catch_up(storage, open_day=D2) == [D0, D1]
        assert catch_up(storage, open_day=D2) == []
        assert storage.closed_days() == [D0, D1]
        assert [(t.day, t.energy_wh, t.readings) for t in
                storage.daily_totals_between([1], D0, D2)] == [(D0, 25, 2), (D1, 20, 1)]
    finally:
        storage.close()


def test_prune_keeps_a_week_of_recovery_files(tmp_path: Path) -> None:
    for day in (date(2025, 1, 31), date(2025, 2, 1), D1):
        snapshot_path(tmp_path, day).write_text("{}")
    (tmp_path / "recovery-notes.json").write_text("{}")
    prune_snapshots(tmp_path, keep_days=7, today=D1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "recovery-2025-02-01.json", "recovery-2025-02-08.json", "recovery-notes.json"]


def test_snapshot_in_a_child_writes_the_store_as_it_was(tmp_path: Path) -> None:
    store = TodayStore(D1, max_reading_wh=50_000)
    store.put(999999999, 0, 4500)
    path = tmp_path / "snap.json"
    pid = snapshot_in_child(store, path)
    store.put(555555555, 0, 1)  # after the fork: not in the child's copy
    assert wait_for_child(pid) is True
    assert orjson.loads(path.read_bytes()) == {"999999999": {"00:31": 4.5}}


def test_failed_snapshot_child_reports_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    pid = snapshot_in_child(TodayStore(D1, max_reading_wh=50_000), blocker / "snap.json")
    assert wait_for_child(pid) is False


# -- the running service with an injected clock -------------------------------------------
class Clock:
    """A settable clock for MeterService."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run_service(settings: Settings, clock: Clock,
                body: Callable[[MeterService], Awaitable[Any]], stop: bool = True) -> Any:
    """Start a MeterService, run ``body`` on the loop, then stop it cleanly (or not)."""

    async def main() -> Any:
        service = MeterService(settings, clock=clock)
        await service.start()
        try:
            return await body(service)
        finally:
            if stop:
                await service.stop()
            else:  # a crash: nothing flushed, nothing written on the way out
                assert service.writer is not None
                await service.writer.sync()

    return asyncio.run(main())


async def send(service: MeterService, meter_id: int, day: date, slot: int, kwh: float) -> Receipt:
    sent = interval_start(day, slot, service.settings.tz) + timedelta(minutes=31)
    data = {"id": meter_id, "timestamp": sent.isoformat(), "reading_kWh": kwh}
    assert service.collector is not None
    return await service.collector.accept(parse_packet(data, service.clock(), service.rules))


def query(settings: Settings, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Ask the service's database (SQLite or PostgreSQL) through a second connection."""
    with dbviews.connect_to(settings.data_dir, settings.database) as db:
        return db.execute(sql, params).fetchall()


def totals_match_readings(settings: Settings, day: date) -> bool:
    totals = query(settings, "SELECT meter_id, energy_wh, readings FROM day_totals"
                   " WHERE day = ? ORDER BY 1", day.isoformat())
    sums = query(settings, "SELECT meter_id, SUM(energy_wh), COUNT(*) FROM readings"
                 " WHERE day = ? GROUP BY 1 ORDER BY 1", day.isoformat())
    return bool(sums) and totals == sums


@pytest.fixture
def settings(tmp_path: Path, backend_database: str | None) -> Settings:
    """The service's settings; every test taking them runs on both backends."""
    return settings_for(tmp_path / "data", database=backend_database or "")



def test_readings_are_durable_and_duplicates_counted_once(settings: Settings) -> None:
    async def body(service: MeterService) -> list[str]:
        outcomes = [(await send(service, 1, D1, 0, 0.5)).outcome,
                    (await send(service, 1, D1, 0, 0.5)).outcome,
                    (await send(service, 1, D1, 0, 0.6)).outcome]
        return outcomes

    assert run_service(settings, Clock(at(D1, 10, 0)), body) == ["stored", "duplicate",
                                                                  "conflict"]
    assert query(settings, "SELECT energy_wh FROM readings") == [(500,)]


def test_restart_mid_day_restores_today(settings: Settings) -> None:
    clock = Clock(at(D1, 10, 0))

    async def first(service: MeterService) -> None:
        for slot in range(10):
            await send(service, 999999999, D1, slot, 1.0 + slot / 100)

    async def second(service: MeterService) -> tuple[int, str]:
        assert service.collector is not None
        count = service.collector.store.reading_count()
        return count, (await send(service, 999999999, D1, 3, 1.03)).outcome

    run_service(settings, clock, first)
    assert run_service(settings, clock, second) == (10, "duplicate")


def test_crash_mid_day_restores_every_acknowledged_reading(settings: Settings) -> None:
    clock = Clock(at(D1, 10, 0))

    async def first(service: MeterService) -> None:
        await asyncio.gather(*(send(service, m, D1, 5, 0.25) for m in range(1, 51)))

    async def second(service: MeterService) -> int:
        assert service.collector is not None
        return service.collector.store.reading_count()

    run_service(settings, clock, first, stop=False)
    assert not snapshot_path(settings.recovery_dir, D1).exists()
    assert run_service(settings, clock, second) == 50


def test_clean_stop_writes_the_recovery_json_in_seed_format(settings: Settings) -> None:
    async def body(service: MeterService) -> dict[str, dict[str, float]]:
        await send(service, 999999999, D1, 0, 4.5)
        await send(service, 555555555, D1, 46, 4.35)
        assert service.collector is not None
        return service.collector.store.to_nested()

    nested = run_service(settings, Clock(at(D1, 23, 40)), body)
    path = settings.recovery_dir / "recovery-2025-02-08.json"
    assert orjson.loads(path.read_bytes()) == nested == {
        "999999999": {"00:31": 4.5}, "555555555": {"23:31": 4.35}}


def test_reading_only_in_the_recovery_json_is_merged_on_start(settings: Settings) -> None:
    settings.recovery_dir.mkdir(parents=True)
    snapshot_path(settings.recovery_dir, D1).write_bytes(b'{"42": {"00:31": 0.5}}')

    async def body(service: MeterService) -> int | None:
        assert service.collector is not None
        return service.collector.store.get(42, 0)

    assert run_service(settings, Clock(at(D1, 10, 0)), body) == 500
    assert query(settings, "SELECT meter_id, day, slot, energy_wh FROM readings") == [
        (42, "2025-02-08", 0, 500)]


def test_day_close_totals_equal_the_sum_of_readings(settings: Settings) -> None:
    clock = Clock(at(D1, 23, 40))

    async def body(service: MeterService) -> date:
        for meter_id in (1, 2, 3):
            for slot in range(47):
                await send(service, meter_id, D1, slot, (meter_id * 1000 + slot * 7) / 1000)
        clock.now = at(D1, 23, 45)
        closed = await service.close_open_day()
        assert service.open_day == D2
        return closed

    assert run_service(settings, clock, body) == D1
    assert totals_match_readings(settings, D1)
    assert query(settings, "SELECT energy_wh FROM day_totals WHERE meter_id = 2") == [
        (47 * 2000 + 7 * sum(range(47)),)]
    assert query(settings, "SELECT region, meters, readings FROM region_daily") == [
        ("Unassigned", 3, 141)]


def test_midnight_packet_after_the_close_amends_the_closed_day(settings: Settings) -> None:
    clock = Clock(at(D1, 23, 40))

    async def body(service: MeterService) -> str:
        await send(service, 1, D1, 46, 1.0)
        clock.now = at(D1, 23, 45)
        await service.close_open_day()
        clock.now = at(D2, 0, 2)
        return (await send(service, 1, D1, 47, 0.25)).outcome

    assert run_service(settings, clock, body) == "stored"
    assert query(settings, "SELECT day, energy_wh, readings FROM day_totals") == [
        ("2025-02-08", 1250, 2)]
    assert query(settings, "SELECT energy_wh, readings FROM region_daily") == [(1250, 2)]


def test_closing_again_after_a_restart_changes_nothing(settings: Settings) -> None:
    clock = Clock(at(D1, 23, 40))

    async def close(service: MeterService) -> None:
        await send(service, 1, D1, 46, 1.0)
        clock.now = at(D1, 23, 45)
        await service.close_open_day()

    async def nothing(service: MeterService) -> date:
        return service.open_day

    run_service(settings, clock, close)
    before = query(settings, "SELECT * FROM day_totals")
    clock.now = at(D1, 23, 50)
    assert run_service(settings, clock, nothing) == D2
    assert query(settings, "SELECT * FROM day_totals") == before


def test_days_missed_while_down_are_closed_on_start(settings: Settings) -> None:
    clock = Clock(at(D1, 12, 0))

    async def yesterday(service: MeterService) -> None:
        for slot in range(24):
            await send(service, 7, D1, slot, 0.3)

    async def nothing(service: MeterService) -> date:
        return service.open_day

    run_service(settings, clock, yesterday, stop=False)
    assert query(settings, "SELECT COUNT(*) FROM day_totals") == [(0,)]
    clock.now = at(D2, 9, 0)
    assert run_service(settings, clock, nothing) == D2
    assert totals_match_readings(settings, D1)
    assert query(settings, "SELECT day FROM closed_days") == [("2025-02-08",)]


def test_late_packet_for_a_day_the_server_never_saw_is_closed_at_the_next_close(
        settings: Settings) -> None:
    clock = Clock(at(D1, 12, 0))

    async def body(service: MeterService) -> None:
        assert (await send(service, 7, D0, 20, 0.4)).outcome == "stored"  # sent while down
        clock.now = at(D1, 23, 45)
        await service.close_open_day()

    run_service(settings, clock, body)
    assert totals_match_readings(settings, D0)


def test_close_timer_firing_early_does_not_close_the_next_day(settings: Settings) -> None:
    clock = Clock(at(D1, 23, 44))

    async def body(service: MeterService) -> list[date]:
        await send(service, 1, D1, 46, 1.0)
        early = await service.close_due_days()
        clock.now = at(D1, 23, 46)
        due = await service.close_due_days()
        again = await service.close_due_days()
        assert service.open_day == D2
        return [*early, *due, *again]

    assert run_service(settings, clock, body) == [D1]


def test_closes_every_day_due_after_the_loop_was_stalled(settings: Settings) -> None:
    clock = Clock(at(D0, 12, 0))

    async def body(service: MeterService) -> list[date]:
        clock.now = at(D2, 0, 10)
        return await service.close_due_days()

    assert run_service(settings, clock, body) == [D0, D1]


def test_fleet_key_is_private_and_the_environment_wins(settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run_service(settings, Clock(at(D1, 1, 0)), lambda service: asyncio.sleep(0))
    key_file = settings.data_dir / "fleet.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    monkeypatch.setenv("METERMATRIX_FLEET_KEY", "ab" * 32)
    service = MeterService(settings)
    try:
        assert service.fleet_key == b"\xab" * 32
    finally:
        service.storage.close()


def test_recovery_json_taken_from_this_database_is_skipped_on_start(settings: Settings) -> None:
    clock = Clock(at(D1, 10, 0))

    async def first(service: MeterService) -> None:
        for slot in range(6):
            await send(service, 999999999, D1, slot, 0.5)

    run_service(settings, clock, first)  # a clean stop writes the file and its meta
    path = snapshot_path(settings.recovery_dir, D1)
    # A reading only in the file: skipped, because the meta says the database holds all
    # the readings the file held (it always should: every reading is committed first).
    data = orjson.loads(path.read_bytes())
    data["42"] = {"00:31": 0.5}
    path.write_bytes(orjson.dumps(data))

    async def second(service: MeterService) -> int | None:
        assert service.collector is not None
        return service.collector.store.get(42, 0)

    assert run_service(settings, clock, second) is None
    path.write_bytes(orjson.dumps(data))  # that stop wrote the file again: put it back
    (settings.recovery_dir / "recovery-2025-02-08.meta.json").unlink()
    assert run_service(settings, clock, second) == 500  # without the meta it is read


def test_a_damaged_recovery_json_is_moved_aside_and_the_start_goes_on(
        settings: Settings) -> None:
    settings.recovery_dir.mkdir(parents=True)
    path = snapshot_path(settings.recovery_dir, D1)
    path.write_bytes(b'{"42": {"00:31": 0.5}, "43": {"00:3')

    async def body(service: MeterService) -> int:
        assert service.collector is not None
        return service.collector.store.reading_count()

    assert run_service(settings, Clock(at(D1, 10, 0)), body) >= 0
    assert path.with_name(path.name + ".bad").exists()
    assert isinstance(orjson.loads(path.read_bytes()), dict)  # the stop wrote a good one


def test_vectorised_restore_equals_restoring_reading_by_reading(settings: Settings) -> None:
    storage = open_storage(settings.data_dir, database=settings.database)
    readings = [Reading(meter_id, D1, slot, (meter_id * 7 + slot) % 5000)
                for meter_id in range(1, 400) for slot in range(meter_id % 48)]
    with storage.transaction():
        storage.add_meters(range(1, 400))
        storage.add_readings(readings)
    one_by_one = TodayStore(D1, settings.max_reading_wh)
    for reading in storage.readings_of_day(D1):
        one_by_one.put(reading.meter_id, reading.slot, reading.energy_wh)
    storage.close()

    async def body(service: MeterService) -> dict[str, dict[str, float]]:
        assert service.collector is not None
        assert service.collector.store.reading_count() == len(readings)
        return service.collector.store.to_nested()

    assert run_service(settings, Clock(at(D1, 10, 0)), body) == one_by_one.to_nested()


def test_packets_racing_the_close_are_each_counted_once(settings: Settings) -> None:
    """Open-day packets in flight when the close starts, and late ones queued behind it:
    each acknowledged reading lands in the closed day's total exactly once."""
    clock = Clock(at(D1, 23, 44))
    meters = range(1, 201)

    async def body(service: MeterService) -> list[str]:
        for meter_id in meters:
            await send(service, meter_id, D1, 45, 0.1)
        in_flight = [asyncio.ensure_future(send(service, m, D1, 46, m / 1000)) for m in meters]
        clock.now = at(D1, 23, 45)
        closing = asyncio.ensure_future(service.close_open_day())
        await asyncio.sleep(0)  # the close is under way: the next packets are late ones
        clock.now = at(D2, 0, 2)
        late = [asyncio.ensure_future(send(service, m, D1, 47, 0.25)) for m in meters]
        receipts = await asyncio.gather(*in_flight, *late)
        assert await closing == D1
        return [receipt.outcome for receipt in receipts]

    outcomes = run_service(settings, clock, body)
    assert outcomes == ["stored"] * 400
    assert totals_match_readings(settings, D1)
    expected = sum(100 + m + 250 for m in meters)
    assert query(settings, "SELECT SUM(energy_wh), SUM(readings) FROM day_totals"
                 " WHERE day = '2025-02-08'") == [(expected, 600)]
    assert query(settings, "SELECT energy_wh, readings FROM region_daily") == [
        (expected, 600)]
