"""``--workers 2`` on PostgreSQL: two server processes on one port, the database decides.

Each packet is posted twice at the same moment on two connections (the kernel hands
them to either worker): exactly one 201 and one 200 come back, one reading is stored,
and both workers answered some of them. A kill -9 of one worker loses nothing it
acknowledged, and its place is taken by a new one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import orjson
import pytest

from tests.conftest import ServerProcess, send_time
from tests.pg import Cluster


@pytest.fixture
def workers(pg_cluster: Cluster, tmp_path: Path, make_server) -> ServerProcess:
    database = pg_cluster.create_database()
    return make_server(tmp_path / "data", clock_at="14:10", database=database,
                       extra=["--workers", "2", "--reader-processes", "0"])


def post_raw(server: ServerProcess, meter_id: int, day: date, slot: int, kwh: float
             ) -> tuple[int, str]:
    """POST a packet on a fresh connection; returns (status, the answering worker's pid)."""
    import http.client

    body = orjson.dumps({"id": meter_id, "reading_kWh": kwh, "timestamp":
                         send_time(day, slot).strftime("%Y-%m-%dT%H:%M:%SZ")})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", "/meter", body, server.signed_headers(meter_id, body))
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-MeterMatrix-Worker") or ""
    finally:
        connection.close()


def test_the_same_packet_posted_to_two_workers_at_once_is_stored_once(
        workers: ServerProcess) -> None:
    day = workers.now().date()
    pids: set[str] = set()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for meter_id in range(900_000_001, 900_000_061):
            barrier = threading.Barrier(2)

            def send(meter: int = meter_id, gate: threading.Barrier = barrier
                     ) -> tuple[int, str]:
                gate.wait()
                return post_raw(workers, meter, day, 20, 0.5 + meter % 10 / 100)

            answers = [future.result() for future in [pool.submit(send), pool.submit(send)]]
            assert sorted(status for status, _ in answers) == [200, 201], (meter_id, answers)
            pids.update(pid for _, pid in answers)
    assert len(pids) == 2, "the kernel gave every connection to one worker"
    with workers.db() as db:
        stored = db.execute("SELECT meter_id, slot, energy_wh FROM readings"
                            " WHERE meter_id > 900000000 ORDER BY 1").fetchall()
    assert stored == [(m, 20, 500 + m % 10 * 10) for m in range(900_000_001, 900_000_061)]


def test_a_worker_killed_under_load_loses_nothing_acknowledged(workers: ServerProcess) -> None:
    day = workers.now().date()
    acknowledged: dict[int, int] = {}
    victims: set[str] = set()

    outcomes: list[object] = []

    def send(meter_id: int) -> None:
        try:
            status, pid = post_raw(workers, meter_id, day, 21, 0.25)
        except OSError as error:
            outcomes.append(error)
            return
        outcomes.append(status)
        if status in (200, 201):
            acknowledged[meter_id] = 250
            victims.add(pid)

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(pool.map(send, range(910_000_000, 910_000_100)))
        victim = int(sorted(victims)[0])
        killing = pool.submit(lambda: (time.sleep(0.05), os.kill(victim, signal.SIGKILL)))
        list(pool.map(send, range(910_000_100, 910_000_400)))
        killing.result()
    assert len(first) == 100 and len(acknowledged) >= 100, outcomes[:120]
    with workers.db() as db:
        stored = dict(db.execute("SELECT meter_id, energy_wh FROM readings"
                                 " WHERE meter_id >= 910000000").fetchall())
    assert {m: wh for m, wh in acknowledged.items()} == {m: stored[m] for m in acknowledged}
    deadline = time.monotonic() + 30  # the parent starts a new worker in its place
    while time.monotonic() < deadline:
        try:
            if post_raw(workers, 910_000_999, day, 22, 0.1)[0] in (200, 201):
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        pytest.fail("no worker answered after the kill")
    assert workers.stop() == 0


def test_the_day_close_runs_once_with_every_workers_readings(
        pg_cluster: Cluster, tmp_path: Path, make_server) -> None:
    from tests.conftest import clock_offset_for

    server: ServerProcess = make_server(
        tmp_path / "data", database=pg_cluster.create_database(),
        clock_offset_s=clock_offset_for("14:10", "UTC") + 50,  # the close is 10 s away
        extra=["--workers", "2", "--reader-processes", "0", "--close-time", "14:11"])
    day = server.now().date()
    with ThreadPoolExecutor(max_workers=8) as pool:  # at once, so both workers answer
        pids = set(pool.map(lambda m: post_raw(server, m, day, 26, 0.1 * (m % 7))[1],
                            range(920_000_000, 920_000_040)))
    assert len(pids) == 2
    deadline = time.monotonic() + 60
    while not server.db().execute("SELECT 1 FROM closed_days WHERE day = ?",
                                  (day.isoformat(),)).fetchall():
        assert time.monotonic() < deadline, "the day was not closed"
        time.sleep(0.2)
    time.sleep(2.5)  # the other worker's close timer has fired too by now
    with server.db() as db:
        totals = db.execute("SELECT meter_id, energy_wh, readings FROM day_totals"
                            " WHERE day = ? ORDER BY 1", (day.isoformat(),)).fetchall()
        sums = db.execute("SELECT meter_id, SUM(energy_wh), COUNT(*) FROM readings"
                          " WHERE day = ? GROUP BY 1 ORDER BY 1", (day.isoformat(),)).fetchall()
    assert len(totals) == 40 and totals == sums
    assert server.log_path.read_text().count(f"closed {day.isoformat()}:") == 1


def post_batch_raw(server: ServerProcess, body: bytes) -> tuple[int, dict[str, object], str]:
    """POST a head-end batch on a fresh connection: (status, answer, answering worker)."""
    import hashlib
    import hmac
    import http.client

    from metermatrix.batches import headend_key
    from metermatrix.signing import load_fleet_key

    key = headend_key(load_fleet_key(server.data_dir, create=False), "headend-1")
    headers = {"X-Headend": "headend-1",
               "X-Headend-Signature": hmac.new(key, body, hashlib.sha256).hexdigest()}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", "/meter/batch", body, headers)
        response = connection.getresponse()
        return (response.status, orjson.loads(response.read()),
                response.getheader("X-MeterMatrix-Worker") or "")
    finally:
        connection.close()


def test_the_same_batch_posted_to_two_workers_at_once_stores_each_line_once(
        workers: ServerProcess) -> None:
    day = workers.now().date()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(6):
            meters = range(910_000_000 + 100 * round_, 910_000_000 + 100 * round_ + 100)
            body = b"\n".join(orjson.dumps({
                "id": m, "reading_kWh": 0.25, "timestamp":
                send_time(day, slot).strftime("%Y-%m-%dT%H:%M:%SZ")})
                for m in meters for slot in (18, 19))
            barrier = threading.Barrier(2)

            def send(text: bytes = body, gate: threading.Barrier = barrier
                     ) -> tuple[int, dict[str, object], str]:
                gate.wait()
                return post_batch_raw(workers, text)

            answers = [future.result() for future in [pool.submit(send), pool.submit(send)]]
            assert [status for status, _, _ in answers] == [200, 200], answers
            assert sum(answer["stored"] for _, answer, _ in answers) == 200  # type: ignore[misc]
            assert sum(answer["duplicate"] for _, answer, _ in answers) == 200  # type: ignore[misc]
    with workers.db() as db:
        (count,) = db.execute("SELECT COUNT(*) FROM readings WHERE meter_id >= 910000000"
                              ).fetchone()
    assert count == 6 * 200
