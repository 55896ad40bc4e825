"""The running service in this process: slow reads stay off the event loop."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer

from metermatrix.accounts import hash_password
from metermatrix.service import MeterService
from metermatrix.signing import meter_key, sign_body
from metermatrix.slots import interval_start
from metermatrix.storage import MeterRecord, Storage, open_storage
from metermatrix.web.app import make_app
from tests.conftest import ServerProcess, free_port
from tests.test_routines import Clock, at, settings_for

DAY = date(2025, 2, 8)
RESIDENT, OTHER = 111_111_111, 222_222_222
PASSWORD = "a long enough password"


def cookies_of(response: HTTPResponse, jar: dict[str, str]) -> dict[str, str]:
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return jar


async def log_in(http: AsyncHTTPClient, url: str) -> dict[str, str]:
    """A resident's session cookies, by the login form."""
    jar = cookies_of(await http.fetch(url + "/profile"), {})
    form = {"meter_id": str(RESIDENT), "password": PASSWORD, "_xsrf": jar["_xsrf"]}
    response = await http.fetch(url + "/profile", method="POST",
                                body=urllib.parse.urlencode(form), follow_redirects=False,
                                raise_error=False, headers=cookie_header(jar))
    assert response.code == 303, response.body
    return cookies_of(response, jar)


def wait_for_file(_: Storage, path: Path, timeout_s: float) -> bool:
    """A reader job that holds its reader until ``path`` exists."""
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return path.exists()


def cookie_header(jar: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in jar.items())}


@pytest.mark.parametrize("query", ["period=current-day", "period=current-day&format=greenbutton"])
def test_meters_are_answered_while_a_residents_page_is_computed(tmp_path: Path,
                                                                query: str) -> None:
    settings = settings_for(tmp_path / "data")
    storage = open_storage(settings.data_dir)
    with storage.transaction():
        storage.save_meter(MeterRecord(RESIDENT, "Aashima", "A3389127I", "West"))
        storage.add_resident(RESIDENT, hash_password(PASSWORD))
    storage.close()

    async def main() -> None:
        service = MeterService(settings, clock=Clock(at(DAY, 10, 5)))
        await service.start()
        port = free_port()
        server = HTTPServer(make_app(service))
        server.listen(port, "127.0.0.1")
        url, http = f"http://127.0.0.1:{port}", AsyncHTTPClient(force_instance=True)
        release = tmp_path / "release"
        try:
            jar = await log_in(http, url)
            # The reader is held busy: the page must wait for it, the meters must not.
            held = asyncio.ensure_future(service.readers.run(wait_for_file, release, 60))
            page = asyncio.ensure_future(http.fetch(
                url + f"/profile/{RESIDENT}/consumption?{query}",
                headers=cookie_header(jar)))
            sent = interval_start(DAY, 19, settings.tz) + timedelta(minutes=31)
            body = orjson.dumps({"id": OTHER, "timestamp": sent.isoformat(),
                                 "reading_kWh": 0.5})
            answer = await http.fetch(url + "/meter", method="POST", body=body, headers={
                "X-Meter-Signature": sign_body(meter_key(service.fleet_key, OTHER), body)})
            status = orjson.loads((await http.fetch(url + "/api/v1/status")).body)
            assert answer.code == 201 and status["readings_today"] == 1
            assert not page.done()
            release.touch()
            assert await held
            assert (await page).code == 200
        finally:
            release.touch()
            http.close()
            server.stop()
            await service.stop()

    asyncio.run(main())


def reader_processes(server_pid: int) -> list[int]:
    """The server's spawned reader processes (children running multiprocessing's spawn)."""
    found = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                found.append(int(child))
    return found


def test_reader_processes_end_with_a_killed_server(make_server: type[ServerProcess]) -> None:
    server = make_server()
    assert server.process is not None
    deadline = time.monotonic() + 30
    while not (readers := reader_processes(server.process.pid)):
        assert time.monotonic() < deadline, "no reader process started"
        time.sleep(0.1)
    server.kill()  # kill -9: the server cannot stop its readers itself
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and b"spawn_main" in
              Path(f"/proc/{pid}/cmdline").read_bytes() for pid in readers):
        assert time.monotonic() < deadline, "a reader outlived its server"
        time.sleep(0.1)
