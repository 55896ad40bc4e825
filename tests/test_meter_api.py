"""POST /meter end to end: a real server.py on a free port, checked through its database.

Every test runs on both backends (the ``backend`` fixture): SQLite in the data folder,
and a fresh database of the session's throwaway PostgreSQL cluster.

The servers run in Asia/Singapore with their clock at 14:10 local time (``--clock-offset-s``)
whatever the hour, so that today has half hours already sent and no day close happens
while the tests run. Only the simulator's test runs on the real clock (the simulator
sends in real time), in whichever zone is further from local midnight.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from metermatrix.signing import meter_key, sign_body
from metermatrix.slots import SLOT_LABELS, slot_of_label, slots_elapsed
from tests.conftest import ROOT, ServerProcess, clock_offset_for, database_args, send_time
from tests.pg import Cluster


def quiet_zone() -> str:
    """UTC or Asia/Singapore, whichever is further into its local day (and not in 23:xx)."""
    now = datetime.now(UTC)
    hours = {zone: now.astimezone(ZoneInfo(zone)).hour for zone in ("UTC", "Asia/Singapore")}
    usable = [zone for zone, hour in hours.items() if 2 <= hour < 23] or ["Asia/Singapore"]
    return max(usable, key=lambda zone: hours[zone])


ZONE = "Asia/Singapore"
TZ = ZoneInfo(ZONE)
#: The servers' clock runs this far ahead of the real one: 14:10 local when the tests start.
OFFSET_S = clock_offset_for("14:10", ZONE)


def now() -> datetime:
    """The instant by the servers' clock."""
    return datetime.now(UTC) + timedelta(seconds=OFFSET_S)


def today() -> date:
    return now().astimezone(TZ).date()


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def packet(meter_id: object, timestamp: object, kwh: object) -> bytes:
    return orjson.dumps({"id": meter_id, "timestamp": timestamp, "reading_kWh": kwh})


def rows(server: ServerProcess, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Ask the database through a second connection: only committed rows are seen."""
    with server.db() as db:
        return db.execute(sql, params).fetchall()


def counts(server: ServerProcess) -> tuple[object, ...]:
    return rows(server, "SELECT (SELECT COUNT(*) FROM readings), (SELECT COUNT(*) FROM meters),"
                " (SELECT COALESCE(SUM(energy_wh), 0) FROM day_totals)")[0]


def post(server: ServerProcess, body: bytes, signer: int | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    """POST raw bytes to /meter, signed with ``signer``'s key when given."""
    all_headers = server.signed_headers(signer, body) if signer is not None else {}
    all_headers.update(headers or {})
    status, payload = server.request("POST", "/meter", body, all_headers)
    return status, orjson.loads(payload)


def status_of(server: ServerProcess) -> dict[str, object]:
    code, payload = server.request("GET", "/api/v1/status")
    assert code == 200
    return orjson.loads(payload)


pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, backend: str,
           request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """One server for the tests that only add their own meters' readings."""
    cluster: Cluster | None = (request.getfixturevalue("pg_cluster")
                               if backend == "postgresql" else None)
    database = cluster.create_database() if cluster is not None else None
    server = ServerProcess(tmp_path_factory.mktemp("shared") / "data", timezone=ZONE,
                           clock_offset_s=OFFSET_S, database=database).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.stop()
    if cluster is not None and database is not None:
        cluster.drop_database(database)


# -- bad packets -------------------------------------------------------------------------
SIGNED = 300000001  # bodies with a valid id are signed with its key, so validation is reached


def bad_packets() -> list[tuple[str, bytes, int, str]]:
    """(case, body, status, words of the error) for every kind of bad packet."""
    moment = now()
    good = stamp(send_time(today(), 0, ZONE))
    return [
        ("not json", b"id=1&reading=2", 400, "not valid JSON"),
        ("truncated json", packet(SIGNED, good, 1.0)[:-1], 400, "not valid JSON"),
        ("array", b"[1, 2, 3]", 400, "JSON object"),
        ("string", b'"hello"', 400, "JSON object"),
        ("number", b"42", 400, "JSON object"),
        ("empty body", b"", 400, "not valid JSON"),
        ("missing reading", orjson.dumps({"id": SIGNED, "timestamp": good}), 400,
         "missing field(s): reading_kWh"),
        ("missing id", orjson.dumps({"timestamp": good, "reading_kWh": 1}), 400,
         "missing field(s): id"),
        ("extra field", orjson.dumps({"id": SIGNED, "timestamp": good, "reading_kWh": 1,
                                      "voltage": 230}), 400, "unexpected field(s): voltage"),
        ("id true", packet(True, good, 1.0), 400, "id must be a positive integer"),
        ("id float", packet(999999999.0, good, 1.0), 400, "id must be a positive integer"),
        ("id string", packet("999999999", good, 1.0), 400, "id must be a positive integer"),
        ("id zero", packet(0, good, 1.0), 400, "id must be a positive integer"),
        ("id negative", packet(-999999999, good, 1.0), 400, "id must be a positive integer"),
        ("id ten digits", packet(1_000_000_000, good, 1.0), 400, "at most 9 digits"),
        ("id null", packet(None, good, 1.0), 400, "id must be a positive integer"),
        ("timestamp words", packet(SIGNED, "half past noon", 1.0), 400, "not ISO 8601"),
        ("timestamp number", packet(SIGNED, int(moment.timestamp()), 1.0), 400,
         "ISO 8601 string"),
        ("timestamp no zone", packet(SIGNED, good.removesuffix("Z"), 1.0), 400, "time zone"),
        ("timestamp future", packet(SIGNED, stamp(moment + timedelta(minutes=36)), 1.0), 400,
         "ahead of the server clock"),
        ("timestamp too old", packet(SIGNED, stamp(send_time(today() - timedelta(days=8), 0,
                                                             ZONE)), 1.0), 400,
         "older than the 7-day acceptance window"),
        ("timestamp between send times", packet(SIGNED, stamp(send_time(today(), 0, ZONE)
                                                              + timedelta(minutes=15)), 1.0),
         400, "away from a send time"),
        ("reading string", packet(SIGNED, good, "5.5"), 400, "reading_kWh must be a number"),
        ("reading NaN text", packet(SIGNED, good, "NaN"), 400, "reading_kWh must be a number"),
        ("reading NaN literal", packet(SIGNED, good, 1.0).replace(b"1.0", b"NaN"), 400,
         "not valid JSON"),
        ("reading infinite", packet(SIGNED, good, 1.0).replace(b"1.0", b"1e999"), 400,
         "not valid JSON"),
        ("reading null", packet(SIGNED, good, None), 400, "reading_kWh must be a number"),
        ("reading bool", packet(SIGNED, good, True), 400, "reading_kWh must be a number"),
        ("reading negative", packet(SIGNED, good, -0.5), 400, "must not be negative"),
        ("reading above ceiling", packet(SIGNED, good, 50.001), 400, "plausibility ceiling"),
        ("reading huge", packet(SIGNED, good, 1e308), 400, "plausibility ceiling"),
        ("body over 64 KiB", packet(SIGNED, good, 1.0) + b" " * 65536, 413, "larger than 65536"),
    ]


def test_bad_packets_are_refused_with_a_reason_and_store_nothing(shared: ServerProcess) -> None:
    before = counts(shared)
    failures = []
    for case, body, expected, words in bad_packets():
        try:
            meter_id = orjson.loads(body)["id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            meter_id = None
        signer = meter_id if type(meter_id) is int and 0 < meter_id < 10**9 else None
        headers = {} if signer else {"X-Meter-Signature": "00" * 32}
        status, answer = post(shared, body, signer, headers)
        if status != expected or words not in str(answer.get("error")):
            failures.append(f"{case}: {status} {answer}")
    assert failures == []
    assert counts(shared) == before


def test_body_over_the_server_limit_is_refused_before_it_is_read(shared: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", shared.port), timeout=10) as sock:
        sock.sendall(b"POST /meter HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n"
                     b"X-Meter-Signature: 00\r\n\r\n")
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 4")


def test_answers_keep_the_sites_headers_and_the_connection(shared: ServerProcess) -> None:
    """The server answers POST /meter itself: the headers every answer has, a length, a
    date, and the connection kept open for the next packet (HTTP/1.1 and 1.0)."""
    sent = send_time(today(), 1, ZONE)
    for version, meters in (("1.1", (300000091, 300000092)), ("1.0", (300000093,))):
        connection = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=30)
        connection._http_vsn, connection._http_vsn_str = int(version.replace(".", "")), \
            f"HTTP/{version}"
        for meter_id in (*meters, 0):
            body = packet(meter_id or SIGNED, stamp(sent), 0.5 if meter_id else "x")
            headers = {**shared.signed_headers(meter_id or SIGNED, body),
                       "Content-Type": "application/json"}
            if version == "1.0":
                headers["Connection"] = "keep-alive"
            connection.request("POST", "/meter", body=body, headers=headers)
            answer = connection.getresponse()
            payload = orjson.loads(answer.read())
            assert answer.status == (201 if meter_id else 400), payload
            assert answer.getheader("Content-Type") == "application/json"
            assert answer.getheader("X-Content-Type-Options") == "nosniff"
            assert answer.getheader("X-Frame-Options") == "SAMEORIGIN"
            assert "default-src 'self'" in answer.getheader("Content-Security-Policy", "")
            assert answer.getheader("Date") and answer.getheader("Content-Length")
            assert not answer.will_close  # the same connection carries the next packet
        connection.close()


def test_a_meter_that_asks_to_close_is_answered_and_closed(shared: ServerProcess) -> None:
    body = packet(300000094, stamp(send_time(today(), 1, ZONE)), 0.5)
    headers = {**shared.signed_headers(300000094, body), "Connection": "close",
               "Content-Length": str(len(body)), "Host": "x"}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", shared.port), timeout=10) as sock:
        sock.sendall(f"POST /meter HTTP/1.1\r\n{head}\r\n".encode() + body)
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after it
            answer += chunk
    status_line, rest = answer.split(b"\r\n", 1)
    head_part, payload = rest.split(b"\r\n\r\n", 1)
    assert status_line == b"HTTP/1.1 201 Created"
    assert b"Connection: close" in head_part.split(b"\r\n")
    assert orjson.loads(payload)["status"] == "stored"


def test_other_methods_get_a_json_405(shared: ServerProcess) -> None:
    status, payload = shared.request("GET", "/meter")
    assert status == 405
    assert "error" in orjson.loads(payload)


# -- signatures ---------------------------------------------------------------------------
def test_unsigned_or_badly_signed_packets_get_401_and_store_nothing(
        shared: ServerProcess) -> None:
    meter_id = 300000002
    body = packet(meter_id, stamp(send_time(today(), 0, ZONE)), 1.0)
    other_key = meter_key(bytes.fromhex((shared.data_dir / "fleet.key").read_text()), 300000003)
    before = counts(shared)
    cases = {
        "missing": {},
        "wrong": {"X-Meter-Signature": "ab" * 32},
        "not hex": {"X-Meter-Signature": "signed-by-me"},
        "not ascii": {"X-Meter-Signature": "\xe9" * 64},
        "other meter's key": {"X-Meter-Signature": sign_body(other_key, body)},
        "other body": shared.signed_headers(meter_id, packet(meter_id, "x", 2.0)),
    }
    answers = {case: post(shared, body, headers=headers) for case, headers in cases.items()}
    assert {case: status for case, (status, _) in answers.items()} == dict.fromkeys(cases, 401)
    assert "missing X-Meter-Signature" in str(answers["missing"][1]["error"])
    assert "signature does not match" in str(answers["wrong"][1]["error"])
    assert counts(shared) == before


def test_signature_in_upper_case_hex_is_accepted(shared: ServerProcess) -> None:
    body = packet(300000004, stamp(send_time(today(), 0, ZONE)), 1.0)
    signature = shared.signed_headers(300000004, body)["X-Meter-Signature"].upper()
    assert post(shared, body, headers={"X-Meter-Signature": signature})[0] == 201


def test_insecure_meters_may_post_unsigned_but_not_badly_signed(make_server) -> None:
    server: ServerProcess = make_server(timezone=ZONE, extra=["--insecure-meters"],
                                        clock_offset_s=OFFSET_S)
    body = packet(400000001, stamp(send_time(today(), 0, ZONE)), 1.0)
    assert post(server, body)[0] == 201
    wrong = packet(400000002, stamp(send_time(today(), 0, ZONE)), 1.0)
    assert post(server, wrong, headers={"X-Meter-Signature": "ab" * 32})[0] == 401
    assert rows(server, "SELECT meter_id FROM readings") == [(400000001,)]


def test_fleet_key_is_made_private_on_first_start(shared: ServerProcess) -> None:
    key_file = shared.data_dir / "fleet.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32


def test_fleet_key_from_the_environment_is_used(make_server,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fleet_key = bytes(range(100, 132))
    monkeypatch.setenv("METERMATRIX_FLEET_KEY", fleet_key.hex())
    server: ServerProcess = make_server(timezone=ZONE, clock_offset_s=OFFSET_S)
    assert not (server.data_dir / "fleet.key").exists()
    body = packet(400000003, stamp(send_time(today(), 0, ZONE)), 1.0)
    signature = sign_body(meter_key(fleet_key, 400000003), body)
    assert post(server, body, headers={"X-Meter-Signature": signature})[0] == 201
    stranger = sign_body(meter_key(bytes(32), 400000003), body)
    assert post(server, body, headers={"X-Meter-Signature": stranger})[0] == 401


# -- storing, duplicates, conflicts -------------------------------------------------------
def test_packet_of_a_new_meter_is_stored_and_the_meter_created(shared: ServerProcess) -> None:
    meter_id, day = 500000001, today()
    readings_before = status_of(shared)["readings_today"]
    status, answer = shared.post_packet(meter_id, send_time(day, 1, ZONE), 5.5)
    assert status == 201
    assert answer == {"status": "stored", "meter": meter_id, "date": day.isoformat(),
                      "slot": "01:01", "reading_kWh": 5.5}
    assert rows(shared, "SELECT day, slot, energy_wh FROM readings WHERE meter_id = ?",
                meter_id) == [(day.isoformat(), 1, 5500)]
    assert rows(shared, "SELECT name, region FROM meters WHERE meter_id = ?", meter_id) == [
        (None, None)]
    assert status_of(shared)["readings_today"] == readings_before + 1
    assert status_of(shared)["open_day"] == day.isoformat()


@pytest.mark.parametrize("days_back", [0, 1])
def test_resent_packet_is_a_duplicate_counted_once(shared: ServerProcess, days_back: int) -> None:
    meter_id, day = 500000010 + days_back, today() - timedelta(days=days_back)
    first = shared.post_packet(meter_id, send_time(day, 2, ZONE), 0.75)
    again = shared.post_packet(meter_id, send_time(day, 2, ZONE), 0.75)
    assert (first[0], first[1]["status"]) == (201, "stored")
    assert (again[0], again[1]["status"]) == (200, "duplicate")
    assert rows(shared, "SELECT COUNT(*), SUM(energy_wh) FROM readings WHERE meter_id = ?",
                meter_id) == [(1, 750)]


@pytest.mark.parametrize("days_back", [0, 1])
def test_different_value_for_a_sent_slot_is_a_conflict_and_the_first_is_kept(
        shared: ServerProcess, days_back: int) -> None:
    meter_id, day = 500000020 + days_back, today() - timedelta(days=days_back)
    assert shared.post_packet(meter_id, send_time(day, 3, ZONE), 0.75)[0] == 201
    status, answer = shared.post_packet(meter_id, send_time(day, 3, ZONE), 0.8)
    assert status == 409
    assert answer["status"] == "conflict"
    assert "already sent a different reading" in str(answer["error"])
    assert rows(shared, "SELECT energy_wh FROM readings WHERE meter_id = ?", meter_id) == [(750,)]


def test_many_meters_at_once_are_all_stored(shared: ServerProcess) -> None:
    """More meters than today's store starts with room for (it grows on the fly)."""
    day, sent = today(), send_time(today(), 4, ZONE)
    bodies = [(m, packet(m, stamp(sent), 0.1)) for m in range(600_000_000, 600_001_100)]
    with ThreadPoolExecutor(max_workers=32) as pool:  # concurrent, as real meters are
        statuses = set(pool.map(lambda item: post(shared, item[1], item[0])[0], bodies))
    assert statuses == {201}
    assert rows(shared, "SELECT COUNT(*) FROM readings WHERE day = ? AND meter_id >= 600000000",
                day.isoformat()) == [(1100,)]


# -- closed days: late packets and the 00:01 packet -----------------------------------------
def close_day(server: ServerProcess, day: date) -> None:
    done = subprocess.run([sys.executable, "-m", "metermatrix", "close-day", "--data-dir",
                           str(server.data_dir), "--date", day.isoformat(),
                           *server.database_args()],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def day_figures(server: ServerProcess, day: date, meter_id: int) -> tuple[object, ...]:
    return rows(server, """SELECT t.energy_wh, t.readings, r.energy_wh, r.readings
                           FROM day_totals t, region_daily r
                           WHERE t.meter_id = ? AND t.day = ? AND r.day = t.day
                           AND r.region = 'Unassigned'""", meter_id, day.isoformat())[0]


def test_late_and_midnight_packets_amend_a_closed_day_by_exactly_their_reading(
        shared: ServerProcess) -> None:
    meter_id, yesterday = 500000030, today() - timedelta(days=1)
    for slot in range(10):
        assert shared.post_packet(meter_id, send_time(yesterday, slot, ZONE), 0.5)[0] == 201
    close_day(shared, yesterday)
    total, readings, region_total, region_readings = day_figures(shared, yesterday, meter_id)
    assert (total, readings) == (5000, 10)

    assert shared.post_packet(meter_id, send_time(yesterday, 30, ZONE), 1.234)[0] == 201
    assert day_figures(shared, yesterday, meter_id) == (
        6234, 11, region_total + 1234, region_readings + 1)

    midnight = datetime.combine(today(), datetime.min.time(), TZ) + timedelta(minutes=1)
    status, answer = shared.post_packet(meter_id, midnight, 0.25)
    assert (status, answer["date"], answer["slot"]) == (201, yesterday.isoformat(), "00:01")
    assert rows(shared, "SELECT slot FROM readings WHERE meter_id = ? AND day = ? AND slot = 47",
                meter_id, yesterday.isoformat()) == [(47,)]
    assert day_figures(shared, yesterday, meter_id) == (
        6484, 12, region_total + 1484, region_readings + 2)
    assert shared.post_packet(meter_id, midnight, 0.25)[0] == 200  # and only once
    assert day_figures(shared, yesterday, meter_id)[:2] == (6484, 12)


def test_singapore_days_begin_at_16_00_utc(make_server) -> None:
    server: ServerProcess = make_server(timezone="Asia/Singapore", clock_offset_s=OFFSET_S)
    status = status_of(server)
    assert status.pop("clock_drift")["warning"] is None
    assert status == {
        "timezone": "Asia/Singapore", "late_days": 7, "readings_today": 0,
        "open_day": today().isoformat()}
    utc_day = now().date() - timedelta(days=2)
    at = datetime.combine(utc_day, datetime.min.time(), UTC)
    midnight = server.post_packet(700000001, at + timedelta(hours=16, minutes=1), 0.4)
    first = server.post_packet(700000001, at + timedelta(hours=16, minutes=31), 0.6)
    assert (midnight[1]["date"], midnight[1]["slot"]) == (utc_day.isoformat(), "00:01")
    assert (first[1]["date"], first[1]["slot"]) == ((utc_day + timedelta(days=1)).isoformat(),
                                                    "00:31")
    assert rows(server, "SELECT day, slot, energy_wh FROM readings ORDER BY day") == [
        (utc_day.isoformat(), 47, 400), ((utc_day + timedelta(days=1)).isoformat(), 0, 600)]


# -- restarts, crashes, catch-up ----------------------------------------------------------
def send_today(server: ServerProcess, meters: range, slots: int) -> dict[str, dict[str, float]]:
    """Post ``slots`` elapsed slots of today for ``meters``; the seed's nested form of them."""
    sent: dict[str, dict[str, float]] = {}
    for meter_id in meters:
        for slot in range(slots):
            kwh = round(0.1 + meter_id % 7 / 10 + slot / 1000, 3)
            assert server.post_packet(meter_id, send_time(today(), slot, ZONE), kwh)[0] == 201
            sent.setdefault(str(meter_id), {})[SLOT_LABELS[slot]] = kwh
    return sent


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_restart_mid_day_restores_today(make_server, how: str) -> None:
    server: ServerProcess = make_server(timezone=ZONE, clock_offset_s=OFFSET_S)
    sent = send_today(server, range(800000001, 800000004), slots=6)
    if how == "stop":
        server.stop()
    else:
        server.kill()
    recovery = server.data_dir / "recovery" / f"recovery-{today().isoformat()}.json"
    if how == "stop":
        assert orjson.loads(recovery.read_bytes()) == sent  # the seed's nested format
    else:
        assert not recovery.exists()
    server.start()
    assert status_of(server)["readings_today"] == 18
    assert server.post_packet(800000001, send_time(today(), 5, ZONE),
                              sent["800000001"][SLOT_LABELS[5]])[0] == 200
    assert server.post_packet(800000002, send_time(today(), 5, ZONE), 9.999)[0] == 409


def test_restart_catches_up_on_yesterday_with_totals_equal_to_readings(
        make_server, tmp_path: Path, backend_database: str | None) -> None:
    owners = tmp_path / "owners.json"
    owners.write_bytes(orjson.dumps({
        "810000001": {"name": "A", "fin_no": "S1", "region": "East", "2020-01-01": 1.0},
        "810000002": {"name": "B", "fin_no": "S2", "region": "East", "2020-01-01": 1.0},
        "810000003": {"name": "C", "fin_no": "S3", "region": "West", "2020-01-01": 1.0},
    }))
    data_dir = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "metermatrix", "import", str(owners), "--data-dir",
                    str(data_dir), *database_args(backend_database)], check=True,
                   capture_output=True, cwd=ROOT)
    server: ServerProcess = make_server(data_dir, timezone=ZONE, clock_offset_s=OFFSET_S,
                                        database=backend_database)
    yesterday = today() - timedelta(days=1)
    for meter_id in (810000001, 810000002, 810000003, 810000004):
        for slot in range(0, 48, 3):
            kwh = (meter_id % 10) * 0.111 + slot * 0.007
            assert server.post_packet(meter_id, send_time(yesterday, slot, ZONE), kwh)[0] == 201
    day = yesterday.isoformat()
    assert rows(server, "SELECT COUNT(*) FROM day_totals WHERE day = ?", day) == [(0,)]
    server.restart()
    assert rows(server, "SELECT day FROM closed_days WHERE day = ?", day) == [(day,)]
    assert rows(server, "SELECT meter_id, energy_wh, readings FROM day_totals WHERE day = ?"
                " ORDER BY 1", day) == rows(
        server, "SELECT meter_id, SUM(energy_wh), COUNT(*) FROM readings WHERE day = ?"
        " GROUP BY 1 ORDER BY 1", day)
    assert rows(server, "SELECT region, energy_wh, meters, readings FROM region_daily"
                " WHERE day = ? ORDER BY 1", day) == rows(
        server, """SELECT COALESCE(m.region, 'Unassigned'), SUM(r.energy_wh),
                   COUNT(DISTINCT r.meter_id), COUNT(*) FROM readings r JOIN meters m
                   USING (meter_id) WHERE r.day = ? GROUP BY 1 ORDER BY 1""", day)
    assert [region for region, *_ in rows(server, "SELECT region FROM region_daily WHERE day = ?"
                                          " ORDER BY 1", day)] == ["East", "Unassigned", "West"]


def test_kill_under_load_loses_no_acknowledged_reading(make_server) -> None:
    zone = quiet_zone()  # the simulator sends by the real clock
    server: ServerProcess = make_server(timezone=zone)
    day = datetime.now(ZoneInfo(zone)).date()
    expected = slots_elapsed(day, datetime.now(UTC), ZoneInfo(zone)) * 200
    log = open(server.data_dir.parent / "simulator.log", "wb")  # noqa: SIM115
    simulator = subprocess.Popen(
        [sys.executable, str(ROOT / "simulator.py"), "--server", server.url, "--data-dir",
         str(server.data_dir), "--date", day.isoformat(), "--days", "1", "--meters", "200",
         "--seed", "1"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while rows(server, "SELECT COUNT(*) FROM readings")[0][0] < 300:
            assert time.monotonic() < deadline and simulator.poll() is None
            time.sleep(0.02)
        server.kill()
    finally:
        simulator.terminate()
        simulator.wait(timeout=60)
        log.close()
    ledger = [orjson.loads(line) for line in
              (server.data_dir / "simulator-ledger.jsonl").read_bytes().splitlines()]
    stored = {(m, d, s): wh for m, d, s, wh in
              rows(server, "SELECT meter_id, day, slot, energy_wh FROM readings")}
    assert 200 <= len(ledger) < expected, "the kill did not land in the middle of the run"
    missing = [line for line in ledger
               if stored.get((line["id"], line["day"], slot_of_label(line["slot"])))
               != line["energy_wh"]]
    assert missing == []
    server.start()
    assert status_of(server)["readings_today"] == len(stored)


def test_late_packet_for_a_day_imported_as_a_total_is_refused_with_409(
        server: ServerProcess, tmp_path: Path) -> None:
    day = datetime.now(UTC).date() - timedelta(days=2)
    master = tmp_path / "master.json"
    master.write_bytes(orjson.dumps({"555555555": {"name": "Carlos", "region": "East",
                                                   day.isoformat(): 14.755}}))
    done = subprocess.run([sys.executable, "-m", "metermatrix", "import", str(master),
                           "--data-dir", str(server.data_dir), *server.database_args()],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    status, answer = server.post_packet(555555555, send_time(day, 10), 0.5)
    assert status == 409 and answer["status"] == "imported"
    assert "imported as a total" in str(answer["error"])
    assert rows(server, "SELECT energy_wh, readings FROM day_totals WHERE meter_id = ?",
                555555555) == [(14755, 48)]
