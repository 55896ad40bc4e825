"""Shared fixtures: a real server process on a free port with its own data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from metermatrix.signing import load_fleet_key, meter_key, sign_body
from metermatrix.slots import interval_start
from tests import dbviews
from tests.pg import Cluster, pg_cluster, pg_database  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
#: ``HH:MM``: the local time at which the time-sensitive fixtures' servers start their day
#: (``.ci/run`` runs those tests at a few awkward hours this way).
ENV_TEST_CLOCK = "METERMATRIX_TEST_CLOCK"


def fixture_clock(default: str | None = None) -> str | None:
    """The local time (HH:MM) the time-sensitive fixtures run at: $METERMATRIX_TEST_CLOCK,
    else ``default`` (None: the real time)."""
    return os.environ.get(ENV_TEST_CLOCK) or default


def clock_offset_for(local_time: str | None, timezone: str) -> float:
    """Seconds to add to the real clock so that it reads ``local_time`` (HH:MM) today in
    ``timezone``; 0 for None."""
    if not local_time:
        return 0.0
    tz = ZoneInfo(timezone)
    now = datetime.now(tz)
    hours, minutes = (int(part) for part in local_time.split(":"))
    return (datetime.combine(now.date(), clock_time(hours, minutes), tz) - now).total_seconds()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python server.py`` in a child process, started and stopped by tests."""

    def __init__(self, data_dir: Path, timezone: str = "UTC", extra: list[str] | None = None,
                 demo: bool = False, dashboards: bool = False,
                 clock_at: str | None = None, preexec: Any = None,
                 clock_offset_s: float | None = None, database: str | None = None) -> None:
        self.data_dir = data_dir
        self.database = database
        self.preexec = preexec
        self.timezone = timezone
        self.extra = list(extra or [])
        self.demo = demo
        self.dashboards = dashboards
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.clock_offset_s = (clock_offset_s if clock_offset_s is not None
                               else clock_offset_for(clock_at, timezone))

    def now(self) -> datetime:
        """The instant by the server's clock (the real time unless ``clock_at`` was given)."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The ``server.py`` command line this server starts with."""
        return [sys.executable, str(ROOT / "server.py"), "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--timezone", self.timezone,
                "--demo" if self.demo else "--no-demo",
                "--dashboards" if self.dashboards else "--no-dashboards",
                "--clock-offset-s", repr(self.clock_offset_s), *self.database_args(),
                *self.extra]

    def start(self, timeout: float = 60) -> ServerProcess:
        command = self.command()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                        preexec_fn=self.preexec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/api/v1/status", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def database_args(self) -> list[str]:
        """``--database URL`` for the server and the metermatrix command, or nothing (SQLite)."""
        return ["--database", self.database] if self.database else []

    def db(self):  # noqa: ANN201
        """A second connection to the server's database with the test views (dbviews)."""
        return dbviews.connect_to(self.data_dir, self.database)

    def stop(self) -> int:
        """SIGTERM and wait: a clean shutdown."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def signed_headers(self, meter_id: int, body: bytes) -> dict[str, str]:
        key = meter_key(load_fleet_key(self.data_dir, create=False), meter_id)
        return {"X-Meter-Signature": sign_body(key, body)}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post_packet(self, meter_id: int, timestamp: str | datetime, reading_kwh: float,
                    sign: bool = True) -> tuple[int, dict[str, object]]:
        """POST a seed 1.1 packet; returns (status, JSON body)."""
        if isinstance(timestamp, datetime):
            timestamp = timestamp.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = orjson.dumps({"id": meter_id, "timestamp": timestamp, "reading_kWh": reading_kwh})
        headers = self.signed_headers(meter_id, body) if sign else {}
        status, payload = self.request("POST", "/meter", body, headers)
        return status, orjson.loads(payload)


def send_time(day: date, slot: int, timezone: str = "UTC") -> datetime:
    """When a meter sends the packet of ``slot`` on local ``day`` (hh:01 / hh:31)."""
    return interval_start(day, slot, ZoneInfo(timezone)) + timedelta(minutes=31)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend a test runs on: every test using it runs on both.

    PostgreSQL needs the session's throwaway cluster: without PostgreSQL binaries those
    runs skip (or fail with METERMATRIX_REQUIRE_POSTGRES=1).
    """
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster")
    return str(request.param)


def database_for(request: pytest.FixtureRequest, databases: list[str]) -> str | None:
    """A fresh PostgreSQL database's URL when the test runs on ``backend`` postgresql."""
    if "backend" not in request.fixturenames or request.getfixturevalue("backend") != "postgresql":
        return None
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    databases.append(cluster.create_database())
    return databases[-1]


@pytest.fixture
def backend_database(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A fresh PostgreSQL database's URL on the postgresql run of ``backend``, else None
    (SQLite in the data folder). A test taking it runs on both backends."""
    if backend == "sqlite":
        yield None
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


def database_args(database: str | None) -> list[str]:
    """``--database URL`` for the metermatrix command, or nothing (SQLite)."""
    return ["--database", database] if database else []


@pytest.fixture
def make_server(tmp_path: Path, request: pytest.FixtureRequest
                ) -> Iterator[type[ServerProcess]]:
    """Start servers (``make_server(data_dir, timezone=...)``); all are stopped afterwards.

    In a test that uses the ``backend`` fixture each server gets a fresh PostgreSQL
    database on the postgresql run (unless ``database=`` is given).
    """
    started: list[ServerProcess] = []
    databases: list[str] = []

    def factory(data_dir: Path | None = None, **kwargs: Any) -> ServerProcess:
        if "database" not in kwargs:
            kwargs["database"] = database_for(request, databases)
        server = ServerProcess(data_dir or tmp_path / "data", **kwargs)
        started.append(server)
        return server.start()

    yield factory  # type: ignore[misc]
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    for url in databases:
        request.getfixturevalue("pg_cluster").drop_database(url)


@pytest.fixture
def server(make_server: type[ServerProcess]) -> ServerProcess:
    """A running server, no demo data, UTC, signed meters."""
    return make_server()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an event loop running in
    the main thread for the rest of the session, where ``asyncio.run`` then fails."""
    items.sort(key=lambda item: "browser" in item.path.parts)
