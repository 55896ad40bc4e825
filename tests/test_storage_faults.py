"""A database the server cannot write: 503 with Retry-After, then back by itself.

The fault is real: the database file and its WAL are made immutable (``chattr +i``,
which holds even for root) while the server runs, and made writable again. Where the
file system has no immutable flag the tests skip, saying so.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import ServerProcess, send_time


def immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True,
                   capture_output=True)


@pytest.fixture
def can_freeze(tmp_path: Path) -> Iterator[None]:
    probe = tmp_path / "probe"
    probe.write_text("x")
    if shutil.which("chattr") is None:
        pytest.skip("no chattr on this machine: cannot make a file immutable")
    try:
        immutable([probe], True)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"this file system has no immutable flag: {error.stderr.decode().strip()}")
    immutable([probe], False)
    yield


def post(server: ServerProcess, meter_id: int, slot: int) -> tuple[int, str | None, bytes]:
    body = orjson.dumps({"id": meter_id, "reading_kWh": 0.5, "timestamp": send_time(
        server.now().date(), slot).strftime("%Y-%m-%dT%H:%M:%SZ")})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", "/meter", body, server.signed_headers(meter_id, body))
        response = connection.getresponse()
        return response.status, response.getheader("Retry-After"), response.read()
    finally:
        connection.close()


def test_a_database_that_cannot_be_written_answers_503_and_recovers_by_itself(
        can_freeze: None, make_server) -> None:
    server: ServerProcess = make_server(clock_at="14:10")
    assert post(server, 300000001, 20)[0] == 201
    files = [server.data_dir / "metermatrix.sqlite3", server.data_dir / "metermatrix.sqlite3-wal"]
    immutable(files, True)
    try:
        for meter_id in (300000002, 300000003):
            status, retry_after, body = post(server, meter_id, 20)
            assert (status, retry_after) == (503, "30"), body
            assert b"not stored, send again" in body
    finally:
        immutable(files, False)
    assert post(server, 300000002, 20)[0] == 201  # no restart: the fault is gone
    assert post(server, 300000004, 20)[0] == 201
    with server.db() as db:
        stored = sorted(m for (m,) in db.execute("SELECT meter_id FROM readings"))
    assert stored == [300000001, 300000002, 300000004]  # nothing refused was stored


def test_a_start_on_a_database_that_cannot_be_written_says_so(
        can_freeze: None, make_server, tmp_path: Path) -> None:
    server: ServerProcess = make_server(clock_at="14:10")
    assert server.stop() == 0
    database = server.data_dir / "metermatrix.sqlite3"
    for leftover in database.parent.glob("metermatrix.sqlite3-*"):
        leftover.unlink()
    immutable([database], True)
    try:
        done = subprocess.run(server.command(), capture_output=True, text=True, timeout=120)
    finally:
        immutable([database], False)
    assert done.returncode != 0
    assert "cannot open the database" in done.stderr and "writable" in done.stderr
    assert "Traceback" not in done.stderr
