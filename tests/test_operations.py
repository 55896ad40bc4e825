"""The server under faults and for operators: bad requests, slow clients, clocks, metrics."""

from __future__ import annotations

import logging
import resource
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from metermatrix.drift import ClockDrift
from metermatrix.logfilter import RepeatFilter
from metermatrix.periods import last_due_boundary
from metermatrix.settings import Settings, validate_settings
from tests.conftest import ROOT, ServerProcess


def raw_request(server: ServerProcess, data: bytes) -> bytes:
    """Send raw bytes, return everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_multipart_packet_gets_a_json_415(server: ServerProcess) -> None:
    body = b"--x\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n1\r\n--x--\r\n"
    status, payload = server.request("POST", "/meter", body, {
        "Content-Type": "multipart/form-data; boundary=x", "X-Meter-Signature": "00"})
    assert status == 415
    assert "multipart/form-data" in orjson.loads(payload)["error"]


def test_headers_over_64_kib_get_a_json_431(server: ServerProcess) -> None:
    head = b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    answer = raw_request(server, head)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"over the limit" in answer.split(b"\r\n\r\n", 1)[1]


def test_zone_with_daylight_saving_is_refused_at_start(tmp_path) -> None:
    with pytest.raises(ValueError, match="not 48 half hours"):
        validate_settings(Settings(timezone="Europe/London"))
    validate_settings(Settings(timezone="Asia/Singapore"))
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--timezone",
                             "Europe/London", "--data-dir", str(tmp_path), "--no-demo"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "daylight saving" in result.stderr


def test_healthz_and_metrics_count_what_happened(server: ServerProcess) -> None:
    status, payload = server.request("GET", "/healthz")
    assert (status, orjson.loads(payload)) == (200, {"status": "ok"})
    sent_at = last_due_boundary(datetime.now(UTC), ZoneInfo("UTC")) + timedelta(minutes=1)
    assert server.post_packet(7, sent_at, 0.5)[0] == 201
    assert server.post_packet(7, sent_at, 0.5)[0] == 200
    assert server.post_packet(7, sent_at, 0.5, sign=False)[0] == 401
    status, text = server.request("GET", "/metrics")
    lines = text.decode().splitlines()
    assert status == 200
    for line in ('metermatrix_packets_total{outcome="stored"} 1.0',
                 'metermatrix_packets_total{outcome="duplicate"} 1.0',
                 'metermatrix_packets_total{outcome="unauthorized"} 1.0',
                 "metermatrix_readings_today 1.0", "metermatrix_storage_errors_total 0.0"):
        assert line in lines
    commits = [line for line in lines if line.startswith("metermatrix_commit_seconds_count")]
    assert float(commits[0].split()[1]) >= 1
    assert any(line.startswith("metermatrix_open_connections ") for line in lines)


def test_server_two_days_fast_warns_of_clock_drift(make_server) -> None:
    server = make_server(extra=["--clock-offset-s", str(2 * 86400)])
    _, payload = server.request("GET", "/api/v1/status")
    assert orjson.loads(payload)["clock_drift"]["warning"] is None
    sent_at = last_due_boundary(datetime.now(UTC), ZoneInfo("UTC")) + timedelta(minutes=1)
    for meter_id in range(1, 13):  # real-time packets, filed as two days late
        assert server.post_packet(meter_id, sent_at, 0.25)[0] == 201
    _, payload = server.request("GET", "/api/v1/status")
    drift = orjson.loads(payload)["clock_drift"]
    assert drift["disagreeing"] == 12 and "check the server's clock" in drift["warning"]
    assert server.log_path.read_text().count("clock drift") == 1  # rate-limited


def test_drift_window_forgets_old_minutes_and_warns_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    drift = ClockDrift(tolerance_s=600, clock=lambda: now[0], min_packets=10, warn_every_s=600)
    with caplog.at_level(logging.WARNING, logger="metermatrix.drift"):
        for _ in range(12):  # two days behind the server clock
            drift.observe(now[0] - timedelta(days=2))
            now[0] += timedelta(seconds=20)
        assert drift.status()["disagreeing"] == 12 and drift.drifting()
        assert sum("clock drift" in r.getMessage() for r in caplog.records) == 1
        now[0] += timedelta(minutes=31)  # the disagreeing minutes leave the window
        for _ in range(12):
            drift.observe(now[0])
        assert (drift.status()["packets"], drift.status()["disagreeing"]) == (12, 0)
        assert not drift.drifting()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` (without answering) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_idle_connections_and_slow_bodies_are_closed_and_busy_ones_kept(make_server) -> None:
    server = make_server(clock_at="14:10", extra=["--idle-timeout-s", "1.5",
                                                  "--body-timeout-s", "1"])
    sent_at = server.now().replace(minute=1, second=0, microsecond=0)
    body = orjson.dumps({"id": 300000071, "reading_kWh": 0.2, "timestamp": sent_at.astimezone(
        UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        **server.signed_headers(300000071, body), "Host": "x",
        "Content-Length": str(len(body))}.items()).encode()
    idle = socket.create_connection(("127.0.0.1", server.port))
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"POST /meter HTTP/1.1\r\n" + head + b"\r\n" + body[:5])
    busy = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    started = time.monotonic()
    answers = []
    while time.monotonic() - started < 4:  # a packet every 0.5 s on one connection
        busy.sendall(b"POST /meter HTTP/1.1\r\n" + head + b"\r\n" + body)
        answers.append(busy.recv(4096).split(b"\r\n", 1)[0])
        time.sleep(0.5)
    assert answers[0] == b"HTTP/1.1 201 Created" and len(set(answers[1:])) == 1
    assert answers[1].startswith(b"HTTP/1.1 200 ")  # duplicates, on the same connection
    assert closed_within(idle, 0.1) and closed_within(slow, 0.1)  # both closed by now
    assert closed_within(busy, 4)  # once it idles, it goes the same way
    assert "request body took over 1 s" in server.log_path.read_text()
    for sock in (idle, slow, busy):
        sock.close()


def low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


@pytest.mark.slow
def test_meters_get_through_many_slow_connections_under_a_low_file_limit(make_server) -> None:
    server = make_server(preexec=low_file_limit,
                         extra=["--idle-timeout-s", "2", "--max-connections", "1000"])
    slow = []
    for _ in range(400):  # each sends half a request head and then nothing
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"POST /meter HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            sock.close()
            continue
        slow.append(sock)
    sent_at = last_due_boundary(datetime.now(UTC), ZoneInfo("UTC")) + timedelta(minutes=1)
    stored = 0
    started = time.monotonic()
    deadline = time.monotonic() + 60
    for meter_id in range(1, 21):
        while time.monotonic() < deadline:
            try:
                status, answer = server.post_packet(meter_id, sent_at, 0.1)
            except OSError:
                time.sleep(0.5)
                continue
            if status == 503:
                assert "Retry" in answer["error"] or "try again" in answer["error"]
                time.sleep(0.5)
                continue
            stored += status == 201
            break
    elapsed_s = time.monotonic() - started
    for sock in slow:
        sock.close()
    assert stored == 20
    assert server.process.poll() is None
    log = server.log_path.read_text()
    assert log.count("Traceback") <= 1 + elapsed_s // 10  # at most one a 10 s, not a storm
    assert len(log) < 200_000


def test_repeated_errors_are_logged_once_per_interval() -> None:
    now = [0.0]
    repeat = RepeatFilter(interval_s=10, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        return logging.LogRecord("tornado", 40, __file__, 1, "accept failed: %s", ("EMFILE",),
                                 None)

    written = []
    for step in range(1000):
        now[0] = step * 0.05  # 1000 errors in 50 s
        item = record()
        if repeat.filter(item):  # type: ignore[arg-type]
            written.append(item.msg)  # type: ignore[attr-defined]
    assert len(written) == 5
    assert written[1] == "accept failed: EMFILE [repeated 199 more times, held back]"
    assert repeat.filter(logging.LogRecord("voila", 20, __file__, 1, "%s", ("a",), None))
    assert repeat.filter(logging.LogRecord("voila", 20, __file__, 1, "%s", ("a",), None))
