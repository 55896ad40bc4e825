"""The open day closed by hand while the server runs, by the timer, and killed at its close.

Rule: a closed day's total is always the sum of its stored readings. Every check goes
through a second connection (tests/dbviews.py), never through the package. Every test
runs on SQLite and on PostgreSQL (the ``backend`` fixture).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import orjson
import pytest

from metermatrix.storage import IMPORTED_DAY
from tests.conftest import ROOT, ServerProcess, send_time
from tests.test_batch import line, post_batch

#: The server's local time at the start of each test; the close is two minutes later.
CLOCK, CLOSE = "14:10", "14:12"


pytestmark = pytest.mark.usefixtures("backend")


def close_day(server: ServerProcess, day: date) -> subprocess.CompletedProcess[str]:
    """``metermatrix close-day`` in its own process, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "metermatrix", "close-day", "--data-dir",
                           str(server.data_dir), "--date", day.isoformat(),
                           *server.database_args()],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


class Ledger:
    """What the test sent and what the server acknowledged: {(meter_id, slot): Wh}."""

    def __init__(self) -> None:
        self.sent: dict[tuple[int, int], int] = {}
        self.acknowledged: dict[tuple[int, int], int] = {}


def post_all(server: ServerProcess, ledger: Ledger, packets: list[tuple[int, int, float]],
             day: date) -> int:
    """POST (meter_id, slot, kWh) packets concurrently; returns how many were acknowledged."""
    def post(item: tuple[int, int, float]) -> int:
        meter_id, slot, kwh = item
        ledger.sent[meter_id, slot] = round(kwh * 1000)
        try:
            status, _ = server.post_packet(meter_id, send_time(day, slot), kwh)
        except OSError:  # the server was killed: not acknowledged
            return 0
        if status in (200, 201):  # stored or duplicate
            ledger.acknowledged[meter_id, slot] = round(kwh * 1000)
            return 1
        return 0

    with ThreadPoolExecutor(max_workers=16) as pool:
        return sum(pool.map(post, packets))


def assert_totals_are_the_readings(server: ServerProcess, day: date, ledger: Ledger) -> None:
    """Every acknowledged reading is stored once; every meter-day total is the sum of its
    stored readings, and the region totals the sum of those."""
    text = day.isoformat()
    with server.db() as db:
        stored = {(m, slot): wh for m, slot, wh in db.execute(
            "SELECT meter_id, slot, energy_wh FROM readings WHERE day = ?", (text,))}
        totals = db.execute("SELECT meter_id, energy_wh, readings FROM day_totals"
                            " WHERE day = ? ORDER BY 1", (text,)).fetchall()
        sums = db.execute("SELECT meter_id, SUM(energy_wh), COUNT(*) FROM readings"
                          " WHERE day = ? GROUP BY 1 ORDER BY 1", (text,)).fetchall()
        regions = db.execute("SELECT SUM(energy_wh), SUM(readings) FROM region_daily"
                             " WHERE day = ?", (text,)).fetchone()
    assert ledger.acknowledged.items() <= stored.items()  # nothing acknowledged is lost
    assert stored.items() <= ledger.sent.items()  # nothing stored that was never sent
    assert totals == sums
    assert regions == (sum(stored.values()), len(stored))


def set_clock(server: ServerProcess, moment: datetime) -> None:
    """Have the server's clock read ``moment`` now (it runs on from there at its next start)."""
    server.clock_offset_s = (moment - datetime.now(UTC)).total_seconds()


def test_close_day_by_hand_while_open_then_restart_after_the_close(make_server) -> None:
    server: ServerProcess = make_server(clock_at=CLOCK, extra=["--close-time", CLOSE])
    day, ledger = server.now().date(), Ledger()
    assert post_all(server, ledger, [(100 + m, 26, 0.1 + m / 1000) for m in range(50)],
                    day) == 50
    done = close_day(server, day)
    assert done.returncode == 0, done.stderr
    later = [(100 + m, 27, 0.2 + m / 1000) for m in range(50)]  # 50 meters with a total
    later += [(200 + m, 27, 0.3 + m / 1000) for m in range(50)]  # 50 meters without one
    assert post_all(server, ledger, later, day) == 100
    assert server.stop() == 0
    assert len(ledger.acknowledged) == 150
    assert_totals_are_the_readings(server, day, ledger)

    set_clock(server, server.now() + timedelta(minutes=3))  # past the close
    server.start()
    assert server.stop() == 0
    assert_totals_are_the_readings(server, day, ledger)


@pytest.mark.parametrize("kill_after_ms", [20, 150, 1000])
def test_closed_day_reopened_and_killed_at_its_close(make_server, kill_after_ms: int) -> None:
    server: ServerProcess = make_server(clock_at=CLOCK, extra=["--close-time", CLOSE])
    day, ledger = server.now().date(), Ledger()
    close_at = datetime.combine(day, time_of_day(14, 12), UTC)
    post_all(server, ledger, [(300 + m, 20, 0.4) for m in range(40)], day)
    assert close_day(server, day).returncode == 0
    post_all(server, ledger, [(300 + m, 21, 0.5) for m in range(40)], day)
    assert server.stop() == 0
    set_clock(server, close_at + timedelta(minutes=1))  # closed again, by the catch-up
    server.start()
    assert server.stop() == 0
    assert_totals_are_the_readings(server, day, ledger)

    set_clock(server, close_at - timedelta(seconds=6))
    server.start()  # reopened: the clock is back before the close, the day open again
    assert post_all(server, ledger, [(300, 22, 0.6)], day) == 1
    stop = threading.Event()

    def load(first_meter: int) -> None:  # meters sending until the kill, 20 at a time
        for batch in range(1000):
            if stop.is_set():
                return
            meters = range(first_meter + 20 * batch, first_meter + 20 * batch + 20)
            post_all(server, ledger, [(m, 23 + batch % 5, 0.7) for m in meters], day)

    workers = [threading.Thread(target=load, args=(first,)) for first in (10_000, 50_000)]
    for worker in workers:
        worker.start()
    while server.now() < close_at + timedelta(milliseconds=kill_after_ms):
        time.sleep(0.005)
    server.kill()  # at its close, under load
    stop.set()
    for worker in workers:
        worker.join()
    assert len(ledger.acknowledged) > 200, "the load did not run up to the close"
    set_clock(server, close_at + timedelta(minutes=1))
    server.start()
    assert server.stop() == 0
    assert_totals_are_the_readings(server, day, ledger)


def import_totals(server: ServerProcess, path: Path, totals: dict[int, tuple[date, float]]
                  ) -> subprocess.CompletedProcess[str]:
    """``metermatrix import`` of day totals {meter_id: (day, kWh)}, in its own process."""
    path.write_bytes(orjson.dumps({f"{meter_id:09d}": {day.isoformat(): kwh}
                                   for meter_id, (day, kwh) in totals.items()}))
    return subprocess.run([sys.executable, "-m", "metermatrix", "import", str(path),
                           "--data-dir", str(server.data_dir), *server.database_args()],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def assert_refused_as_imported(status: int, answer: dict[str, object]) -> None:
    assert (status, answer["status"], answer.get("error")) == (409, "imported", IMPORTED_DAY)


def test_open_day_imported_as_a_total_refuses_the_meters_packets_through_its_close(
        make_server, tmp_path: Path) -> None:
    server: ServerProcess = make_server(clock_at=CLOCK, extra=["--close-time", CLOSE])
    day, ledger = server.now().date(), Ledger()
    close_at = datetime.combine(day, time_of_day(14, 12), UTC)
    assert post_all(server, ledger, [(100 + m, 20, 0.1) for m in range(5)], day) == 5
    done = import_totals(server, tmp_path / "today.json",
                         {500: (day, 7.5), 501: (day, 2.25)})
    assert done.returncode == 0, done.stderr
    # The running server learns of the import from the database, in the commit.
    assert_refused_as_imported(*server.post_packet(500, send_time(day, 21), 0.4))
    assert_refused_as_imported(*server.post_packet(500, send_time(day, 21), 0.4))  # resent
    status, answer = post_batch(server, line(501, send_time(day, 21), 0.3) + b"\n"
                                + line(100, send_time(day, 21), 0.2))
    assert (status, answer["stored"], answer["conflict"]) == (200, 1, 1), answer
    assert answer["errors"] == [{"line": 1, "error": IMPORTED_DAY}]
    ledger.acknowledged[100, 21] = ledger.sent[100, 21] = 200
    assert post_all(server, ledger, [(101, 21, 0.3)], day) == 1  # meters with readings go on
    assert server.stop() == 0

    set_clock(server, close_at - timedelta(seconds=15))
    server.start()  # today's store restored without the imported meters
    assert_refused_as_imported(*server.post_packet(500, send_time(day, 22), 0.4))
    assert post_all(server, ledger, [(102, 22, 0.3)], day) == 1
    while server.now() < close_at + timedelta(seconds=1):
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while orjson.loads(server.request("GET", "/api/v1/status")[1])["open_day"] == day.isoformat():
        assert time.monotonic() < deadline, "the timer did not close the day"
        time.sleep(0.1)
    assert_refused_as_imported(*server.post_packet(501, send_time(day, 23), 0.4))  # late
    assert server.stop() == 0

    with server.db() as db:
        totals = db.execute("SELECT meter_id, energy_wh, readings FROM day_totals"
                            " WHERE day = ? ORDER BY 1", (day.isoformat(),)).fetchall()
        stored = dict(((m, s), wh) for m, s, wh in db.execute(
            "SELECT meter_id, slot, energy_wh FROM readings WHERE day = ?", (day.isoformat(),)))
        regions = db.execute("SELECT SUM(energy_wh), SUM(readings) FROM region_daily"
                             " WHERE day = ?", (day.isoformat(),)).fetchone()
    assert stored == ledger.acknowledged and len(stored) == 8  # none of the imported meters
    sums: dict[int, tuple[int, int]] = {}
    for (meter_id, _), wh in stored.items():
        energy, count = sums.get(meter_id, (0, 0))
        sums[meter_id] = (energy + wh, count + 1)
    expected = {**sums, 500: (7500, 48), 501: (2250, 48)}  # the imported figures, kept
    assert totals == [(meter_id, *expected[meter_id]) for meter_id in sorted(expected)]
    assert regions == (sum(stored.values()) + 9750, len(stored) + 96)
