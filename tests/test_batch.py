"""POST /meter/batch: a head-end system's NDJSON batch, through a real server."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson

from metermatrix.batches import headend_key
from metermatrix.signing import load_fleet_key
from metermatrix.slots import SLOTS_PER_DAY
from tests import dbviews
from tests.conftest import ROOT, ServerProcess, send_time


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def line(meter_id: int, moment: datetime, kwh: float) -> bytes:
    return orjson.dumps({"id": meter_id, "timestamp": stamp(moment), "reading_kWh": kwh})


def post_batch(server: ServerProcess, body: bytes, name: str = "headend-1",
               signature: str | None = None) -> tuple[int, dict[str, object]]:
    key = headend_key(load_fleet_key(server.data_dir, create=False), name)
    signature = signature or hmac.new(key, body, hashlib.sha256).hexdigest()
    status, payload = server.request("POST", "/meter/batch", body,
                                     {"X-Headend": name, "X-Headend-Signature": signature})
    return status, orjson.loads(payload)


def due_today(count: int) -> list[datetime]:
    now = datetime.now(UTC)
    today = now.date()
    times = [send_time(today, slot) for slot in range(SLOTS_PER_DAY)]
    return [t for t in times if t <= now][-count:] or [send_time(today - timedelta(days=1), 40)]


def stored(server: ServerProcess) -> dict[tuple[int, str, int], int]:
    with dbviews.connect(server.data_dir / "metermatrix.sqlite3") as db:
        return {(m, d, s): wh for m, d, s, wh in
                db.execute("SELECT meter_id, day, slot, energy_wh FROM readings")}


def test_mixed_batch_stores_the_good_lines_and_names_every_other_one(
        server: ServerProcess) -> None:
    moment = due_today(1)[0]
    server.post_packet(700000001, moment, 0.5)  # already stored: the batch repeats it
    body = b"\n".join([
        line(700000002, moment, 0.25),
        line(700000001, moment, 0.5),      # duplicate
        b"{not json",
        line(700000001, moment, 0.6),      # conflict with the stored 0.5
        line(700000003, moment, -1),       # refused: negative
        orjson.dumps({"id": 700000004, "timestamp": stamp(moment)}),  # missing field
        line(700000005, moment - timedelta(days=30), 0.1),  # too old
        line(700000006, moment, 0.125),
        b"",
    ])
    status, answer = post_batch(server, body)
    assert status == 200, answer
    assert {k: answer[k] for k in ("stored", "duplicate", "conflict", "refused")} == {
        "stored": 2, "duplicate": 1, "conflict": 1, "refused": 4}
    errors = {item["line"]: item["error"] for item in answer["errors"]}
    assert sorted(errors) == [3, 4, 5, 6, 7]
    assert "not valid JSON" in errors[3] and "different reading" in errors[4]
    assert "negative" in errors[5] and "missing field" in errors[6] and "older" in errors[7]
    rows = stored(server)
    assert {m: wh for (m, _, _), wh in rows.items()} == {700000001: 500, 700000002: 250,
                                                        700000006: 125}


def test_a_bad_signature_or_a_body_that_is_not_ndjson_stores_nothing(
        server: ServerProcess) -> None:
    body = line(700000002, due_today(1)[0], 0.25)
    assert post_batch(server, body, signature="00" * 32)[0] == 401
    assert server.request("POST", "/meter/batch", body)[0] == 401
    other = headend_key(load_fleet_key(server.data_dir, create=False), "other")
    forged = hmac.new(other, body, hashlib.sha256).hexdigest()
    assert post_batch(server, body, name="headend-1", signature=forged)[0] == 401
    status, answer = post_batch(server, b"\n\n  \n")
    assert status == 400 and "newline-delimited" in answer["error"]
    assert stored(server) == {}


def test_an_oversized_batch_is_refused_whole(server: ServerProcess) -> None:
    body = b"\n" * 500_002
    status, answer = post_batch(server, body)
    assert status == 413 and "lines" in answer["error"]


def test_late_lines_of_a_closed_day_amend_it(server: ServerProcess) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    body = b"\n".join(line(710000000 + slot, send_time(yesterday, slot), 0.1)
                      for slot in range(5, 8))
    status, answer = post_batch(server, body)
    assert status == 200 and answer["stored"] == 3, answer
    done = subprocess.run([sys.executable, "-m", "metermatrix", "close-day", "--data-dir",
                           str(server.data_dir), "--date", yesterday.isoformat()],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    status, answer = post_batch(server, line(710000005, send_time(yesterday, 9), 0.2))
    assert answer["stored"] == 1
    with dbviews.connect(server.data_dir / "metermatrix.sqlite3") as db:
        assert db.execute("SELECT energy_wh, readings FROM day_totals WHERE meter_id = ?",
                          (710000005,)).fetchall() == [(300, 2)]


def test_headend_key_command_prints_the_key_the_server_checks(server: ServerProcess) -> None:
    done = subprocess.run([sys.executable, "-m", "metermatrix", "headend-key", "north-1",
                           "--data-dir", str(server.data_dir)], capture_output=True, text=True,
                          cwd=ROOT)
    key = bytes.fromhex(done.stdout.strip())
    body = line(720000001, due_today(1)[0], 0.3)
    signature = hmac.new(key, body, hashlib.sha256).hexdigest()
    assert post_batch(server, body, name="north-1", signature=signature)[1]["stored"] == 1


def test_kill_during_batches_loses_no_acknowledged_line(make_server) -> None:
    server = make_server()
    times = due_today(48)
    acknowledged: dict[tuple[int, int], int] = {}
    stop = threading.Event()

    def send() -> None:
        for batch in range(200):
            if stop.is_set():
                return
            meters = range(730000000 + batch * 500, 730000000 + (batch + 1) * 500)
            lines = [(m, i, (m + i) % 900) for m in meters for i in range(min(4, len(times)))]
            body = b"\n".join(line(m, times[i], wh / 1000) for m, i, wh in lines)
            try:
                status, _ = post_batch(server, body)
            except OSError:
                return
            if status == 200:
                acknowledged.update({(m, i): wh for m, i, wh in lines})

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(2.0)
    server.kill()
    stop.set()
    sender.join()
    assert acknowledged, "no batch was acknowledged before the kill"
    by_meter_slot = stored(server)
    for (meter_id, index), wh in acknowledged.items():
        moment = times[index] - timedelta(minutes=31)
        key = (meter_id, moment.date().isoformat(), (moment.hour * 60 + moment.minute) // 30)
        assert by_meter_slot.get(key) == wh, key


def test_packets_are_answered_while_a_large_batch_is_parsed(server: ServerProcess) -> None:
    """The batch's lines are checked on a worker thread: the event loop goes on meanwhile.

    Packets are sent one after another, 10 ms apart, once the batch's body is written.
    Its 500,000 lines take the server seconds to check (the signature, then each line);
    with that on the event loop, one packet waited for the check and the next one for
    the batch's commit (seen: 1 packet answered before the batch). Off the event loop,
    packets are answered while the lines are checked (seen: 25).
    """
    moment = due_today(1)[0]
    body = b"\n".join(line(740_000_000 + i, moment, 0.25) for i in range(500_000))
    key = headend_key(load_fleet_key(server.data_dir, create=False), "headend-1")
    headers = {"X-Headend": "headend-1", "Content-Type": "application/x-ndjson",
               "X-Headend-Signature": hmac.new(key, body, hashlib.sha256).hexdigest()}
    sent = threading.Event()
    answered: list[float] = []

    def post_packets() -> None:
        sent.wait()
        for meter_id in range(750_000_000, 750_000_400):
            status, _ = server.post_packet(meter_id, moment, 0.1)
            assert status == 201
            answered.append(time.monotonic())
            if batch_done.is_set():
                return
            time.sleep(0.01)

    batch_done = threading.Event()
    poster = threading.Thread(target=post_packets)
    poster.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.request("POST", "/meter/batch", body=body, headers=headers)
    sent_at = time.monotonic()
    sent.set()  # the whole body is written: the server is reading or checking it
    response = connection.getresponse()
    payload = orjson.loads(response.read())
    batch_at = time.monotonic()
    batch_done.set()
    poster.join()
    assert response.status == 200 and payload["stored"] == 500_000
    early = [at - sent_at for at in answered if at < batch_at - 0.1]
    assert len(early) >= 5, f"packets answered before the batch, [s]: {early}"
