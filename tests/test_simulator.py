"""The meter simulator against a real server: replay, duplicates, backfill, refusals, retries."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import tornado.web

from metermatrix.fleet import synthetic_fleet
from metermatrix.loadshape import DEFAULT_SEED, fleet_day_energy_wh
from metermatrix.signing import load_fleet_key, verify_signature
from metermatrix.simulation import (
    Delivery,
    EnergyCache,
    SimulatorConfig,
    backfill_slots,
    due_slots,
    live_deliveries,
    next_send,
    packet_body,
    simulate,
)
from metermatrix.slots import SLOT_LABELS, slot_of_label
from tests import dbviews
from tests.conftest import ROOT, ServerProcess, clock_offset_for, fixture_clock, free_port

UTC_ZONE = ZoneInfo("UTC")
METERS = 3
#: Local time (UTC) of the servers' and the simulator's clocks, unless
#: $METERMATRIX_TEST_CLOCK says another (``.ci/run`` tries 00:05 and 23:50).
CLOCK = "14:10"


@pytest.fixture
def server(make_server) -> ServerProcess:
    """A running server whose clock reads the test clock (UTC, no demo data)."""
    return make_server(clock_at=fixture_clock(CLOCK))


def own_clock_offset_s() -> float:
    """The offset [s] that makes a clock read the test clock now (for servers of our own)."""
    return clock_offset_for(fixture_clock(CLOCK), "UTC")


def yesterday(server: ServerProcess | None = None) -> date:
    """The day before today by the server's clock (or by the test clock)."""
    offset_s = server.clock_offset_s if server is not None else own_clock_offset_s()
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).date() - timedelta(days=1)


def run_simulator(server_url: str, data_dir: Path, ledger: Path, *options: str,
                  clock_offset_s: float = 0.0) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "simulator.py"), "--server", server_url,
               "--data-dir", str(data_dir), "--ledger", str(ledger),
               "--clock-offset-s", repr(clock_offset_s), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT)


def simulate_against(server: ServerProcess, ledger: Path, *options: str,
                     data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """simulator.py against ``server``, its clock set to the server's."""
    return run_simulator(server.url, data_dir or server.data_dir, ledger, *options,
                         clock_offset_s=server.clock_offset_s)


def read_ledger(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def stored_readings(data_dir: Path) -> dict[tuple[int, str, int], int]:
    with dbviews.connect(data_dir / "metermatrix.sqlite3") as db:
        rows = db.execute("SELECT meter_id, day, slot, energy_wh FROM readings").fetchall()
    return {(meter_id, day, slot): energy_wh for meter_id, day, slot, energy_wh in rows}


def ledgered_readings(ledger: list[dict[str, Any]]) -> dict[tuple[int, str, int], int]:
    return {(line["id"], line["day"], slot_of_label(line["slot"])): line["energy_wh"]
            for line in ledger}


def model_readings(day: date) -> dict[tuple[int, str, int], int]:
    ids = [meter.meter_id for meter in synthetic_fleet(METERS, DEFAULT_SEED)]
    energy_wh = fleet_day_energy_wh(ids, day, DEFAULT_SEED)
    return {(meter_id, day.isoformat(), slot): int(energy_wh[row, slot])
            for row, meter_id in enumerate(ids) for slot in range(48)}


# -- pure parts ------------------------------------------------------------------------------

def test_packet_body_is_the_seed_format_exactly() -> None:
    sent_at = datetime(2025, 2, 8, 8, 31, tzinfo=ZoneInfo("Asia/Singapore"))
    assert packet_body(999_999_999, sent_at, 512) == (
        b'{"id": 999999999, "timestamp": "2025-02-08T00:31:00Z", "reading_kWh": 0.512}')
    assert orjson.loads(packet_body(555_555_555, sent_at, 70))["reading_kWh"] == 0.07


def test_slots_due_exclude_send_times_in_the_future() -> None:
    now = datetime(2026, 11, 27, 10, 45, tzinfo=UTC)
    slots = due_slots([date(2026, 11, 26), date(2026, 11, 27)], now, UTC_ZONE)
    assert len(slots) == 48 + 21
    assert slots[47] == (date(2026, 11, 26), 47)
    assert slots[-1] == (date(2026, 11, 27), 20)  # sent 10:31


def test_backfill_covers_yesterdays_last_packet_and_todays_elapsed_slots() -> None:
    now = datetime(2026, 11, 27, 2, 5, tzinfo=ZoneInfo("Asia/Singapore"))
    assert backfill_slots(now, ZoneInfo("Asia/Singapore")) == [
        (date(2026, 11, 26), 47), *((date(2026, 11, 27), slot) for slot in range(4))]
    assert backfill_slots(datetime(2026, 11, 27, 0, 0, 30, tzinfo=UTC), UTC_ZONE) == []


@pytest.mark.parametrize(("after", "expected"), [
    (datetime(2026, 11, 27, 10, 45, tzinfo=UTC), (date(2026, 11, 27), 21, "11:01")),
    (datetime(2026, 11, 27, 11, 1, tzinfo=UTC), (date(2026, 11, 27), 22, "11:31")),
    (datetime(2026, 11, 27, 23, 40, tzinfo=UTC), (date(2026, 11, 27), 47, "00:01")),
])
def test_next_send_is_the_following_hh01_or_hh31(after: datetime,
                                                 expected: tuple[date, int, str]) -> None:
    day, slot, moment = next_send(after, UTC_ZONE)
    assert (day, slot, moment.strftime("%H:%M")) == expected
    assert SLOT_LABELS[slot] == expected[2]


def test_live_packets_leave_within_twenty_seconds_of_each_boundary() -> None:
    ids = [meter.meter_id for meter in synthetic_fleet(20, 1)]
    energy = EnergyCache(ids, DEFAULT_SEED)
    now = datetime(2026, 11, 27, 0, 5, tzinfo=UTC)  # a clock standing still
    after = now - timedelta(hours=2)

    async def first_two_slots() -> list[Delivery]:
        deliveries = live_deliveries(after, UTC_ZONE, energy, asyncio.Event(), lambda: now)
        return [await anext(deliveries) for _ in range(2 * len(ids))]

    deliveries = asyncio.run(first_two_slots())
    boundary = after
    for start in (0, len(ids)):
        batch = deliveries[start:start + len(ids)]
        day, slot, boundary = next_send(boundary, UTC_ZONE)
        assert sorted(d.meter_id for d in batch) == sorted(ids)
        assert all(0 <= (d.sent_at - boundary).total_seconds() < 20
                   for d in batch)
        assert all(d.energy_wh == energy.of_day(day)[ids.index(d.meter_id), slot]
                   for d in batch)


# -- against the real server -----------------------------------------------------------------

def test_replay_ledgers_every_acknowledged_packet_and_stores_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    day, ledger = yesterday(server), tmp_path / "ledger.jsonl"
    result = simulate_against(server, ledger, "--meters", str(METERS),
                              "--date", day.isoformat(), "--days", "1")
    assert result.returncode == 0, result.stderr
    lines = read_ledger(ledger)
    assert len(lines) == METERS * 48
    assert {line["status"] for line in lines} == {"stored"}
    assert ledgered_readings(lines) == model_readings(day) == stored_readings(server.data_dir)
    assert f"sent {METERS * 48}, stored {METERS * 48}, duplicate 0, refused 0" in result.stderr


def test_replay_posts_for_the_meters_of_a_fleet_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    masterdb = orjson.loads((ROOT / "testing_data" / "masterDB.json").read_bytes())
    fleet = {key: masterdb[key] for key in ("999999999", "555555555")}
    fleet_file, ledger = tmp_path / "fleet.json", tmp_path / "ledger.jsonl"
    fleet_file.write_bytes(orjson.dumps(fleet))
    result = simulate_against(server, ledger, "--fleet", str(fleet_file),
                              "--date", yesterday(server).isoformat())
    assert result.returncode == 0, result.stderr
    assert {line["id"] for line in read_ledger(ledger)} == {999_999_999, 555_555_555}
    assert {meter_id for meter_id, _, _ in stored_readings(server.data_dir)} == {
        999_999_999, 555_555_555}


def test_replaying_a_day_again_is_acknowledged_as_duplicates(
    server: ServerProcess, tmp_path: Path
) -> None:
    day, first, second = yesterday(server), tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    options = ("--meters", str(METERS), "--date", day.isoformat(), "--concurrency", "4")
    assert simulate_against(server, first, *options).returncode == 0
    result = simulate_against(server, second, *options)
    assert result.returncode == 0, result.stderr
    assert {line["status"] for line in read_ledger(second)} == {"duplicate"}
    assert ledgered_readings(read_ledger(second)) == ledgered_readings(read_ledger(first))
    assert len(stored_readings(server.data_dir)) == METERS * 48


def test_packets_signed_with_another_fleet_key_are_refused_and_not_ledgered(
    server: ServerProcess, tmp_path: Path
) -> None:
    other_data_dir, ledger = tmp_path / "other", tmp_path / "ledger.jsonl"
    load_fleet_key(other_data_dir, create=True)
    result = simulate_against(server, ledger, "--meters", "1",
                              "--date", yesterday(server).isoformat(), data_dir=other_data_dir)
    assert result.returncode == 1
    assert "refused 48" in result.stderr and "signature" in result.stderr
    assert read_ledger(ledger) == []
    assert stored_readings(server.data_dir) == {}


def test_missing_fleet_key_is_explained(server: ServerProcess, tmp_path: Path) -> None:
    result = simulate_against(server, tmp_path / "ledger.jsonl", "--meters", "1",
                              "--date", yesterday(server).isoformat(),
                              data_dir=tmp_path / "empty")
    assert result.returncode == 2
    assert "fleet key" in result.stderr


def test_backfill_then_live_until_sigterm(server: ServerProcess, tmp_path: Path) -> None:
    before = server.now()
    if before.time() < datetime.min.replace(minute=2).time():
        pytest.skip("nothing is due in the first minutes of a day")
    ledger = tmp_path / "ledger.jsonl"
    command = [sys.executable, str(ROOT / "simulator.py"), "--server", server.url,
               "--data-dir", str(server.data_dir), "--ledger", str(ledger),
               "--meters", str(METERS), "--backfill",
               "--clock-offset-s", repr(server.clock_offset_s)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    expected = METERS * len(backfill_slots(before, UTC_ZONE))
    deadline = time.monotonic() + 60
    while (len(read_ledger(ledger)) < expected and time.monotonic() < deadline
           and process.poll() is None):
        time.sleep(0.2)  # the ledger is flushed within a second while the simulator runs
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    due = {(d.isoformat(), s) for d, s in backfill_slots(server.now(), UTC_ZONE)}
    ledgered = ledgered_readings(read_ledger(ledger))
    assert expected <= len(ledgered) <= METERS * len(due)
    assert {(day, slot) for _, day, slot in ledgered} <= due
    assert ledgered.items() <= stored_readings(server.data_dir).items()
    assert "simulator: sent" in stderr


@pytest.mark.parametrize("clock_at", ["00:05", "23:50"])
def test_backfill_sends_what_is_due_by_the_clock_it_shares_with_the_server(
        make_server, tmp_path: Path, clock_at: str) -> None:
    """Just after midnight only yesterday's last packet (sent at 00:01) is due; after the
    close at 23:45 also all of today's but the last, which the server files late."""
    server: ServerProcess = make_server(clock_at=clock_at)
    expected = backfill_slots(server.now(), UTC_ZONE)
    assert len(expected) == (1 if clock_at == "00:05" else 1 + 47)
    ledger = tmp_path / "ledger.jsonl"
    command = [sys.executable, str(ROOT / "simulator.py"), "--server", server.url,
               "--data-dir", str(server.data_dir), "--ledger", str(ledger),
               "--meters", str(METERS), "--backfill",
               "--clock-offset-s", repr(server.clock_offset_s)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while (len(read_ledger(ledger)) < METERS * len(expected) and time.monotonic() < deadline
           and process.poll() is None):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    ledgered = ledgered_readings(read_ledger(ledger))
    assert {(day, slot) for _, day, slot in ledgered} == {
        (day.isoformat(), slot) for day, slot in expected}
    assert len(ledgered) == METERS * len(expected)
    assert ledgered.items() <= stored_readings(server.data_dir).items()


# -- a busy server -----------------------------------------------------------------------------

class BusyOnceHandler(tornado.web.RequestHandler):
    """Answers 503 to the first copy of each packet, then acknowledges it."""

    def initialize(self, seen: set[bytes], fleet_key: bytes) -> None:
        self.seen, self.fleet_key = seen, fleet_key

    def post(self) -> None:
        body = self.request.body
        meter_id = orjson.loads(body)["id"]
        assert verify_signature(self.fleet_key, meter_id, body,
                                self.request.headers["X-Meter-Signature"])
        if body not in self.seen:
            self.seen.add(body)
            self.set_status(503)
            self.set_header("Retry-After", "0")
            self.finish({"error": "reading not stored, send again"})
            return
        self.set_status(201)
        self.finish({"status": "stored"})


@pytest.fixture
def busy_server(tmp_path: Path) -> Iterator[tuple[str, Path, set[bytes]]]:
    """A server of its own in a thread, without /api/v1/status (so UTC is assumed)."""
    data_dir, seen, port = tmp_path / "busy", set[bytes](), free_port()
    fleet_key = load_fleet_key(data_dir, create=True)
    started, loop_box = threading.Event(), []

    def serve() -> None:
        async def main() -> None:
            app = tornado.web.Application(
                [(r"/meter", BusyOnceHandler, {"seen": seen, "fleet_key": fleet_key})])
            server = app.listen(port, "127.0.0.1")
            loop_box.append((asyncio.get_running_loop(), stop := asyncio.Event()))
            started.set()
            await stop.wait()
            server.stop()
        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    yield f"http://127.0.0.1:{port}", data_dir, seen
    loop, stop = loop_box[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def test_busy_answers_are_retried_and_only_acknowledgements_ledgered(
    busy_server: tuple[str, Path, set[bytes]], tmp_path: Path
) -> None:
    url, data_dir, seen = busy_server
    ledger = tmp_path / "ledger.jsonl"
    config = SimulatorConfig(server=url, data_dir=data_dir, meter_ids=[999_999_999],
                             seed=DEFAULT_SEED, ledger_path=ledger, concurrency=8,
                             start_day=yesterday(), clock_offset_s=own_clock_offset_s())
    assert asyncio.run(simulate(config)) == 0
    lines = read_ledger(ledger)
    assert len(lines) == len(seen) == 48
    assert {line["slot"] for line in lines} == set(SLOT_LABELS)
    assert all(line["day"] == yesterday().isoformat() for line in lines)


def test_bulk_replay_through_the_batch_route_ledgers_and_stores_the_same_day(
    server: ServerProcess, tmp_path: Path
) -> None:
    day, ledger = yesterday(server), tmp_path / "ledger.jsonl"
    result = simulate_against(server, ledger, "--meters", str(METERS),
                              "--date", day.isoformat(), "--bulk", "--batch-size", "50")
    assert result.returncode == 0, result.stderr
    lines = read_ledger(ledger)
    assert len(lines) == METERS * 48
    assert ledgered_readings(lines) == model_readings(day) == stored_readings(server.data_dir)
    assert f"sent {METERS * 48}, stored {METERS * 48}, duplicate 0, refused 0" in result.stderr
    again = simulate_against(server, tmp_path / "again.jsonl", "--meters",
                             str(METERS), "--date", day.isoformat(), "--bulk")
    assert f"duplicate {METERS * 48}" in again.stderr, again.stderr


def test_bulk_needs_a_day_to_replay(tmp_path: Path) -> None:
    result = run_simulator("http://127.0.0.1:1", tmp_path, tmp_path / "l.jsonl", "--bulk")
    assert result.returncode == 2 and "--date" in result.stderr
