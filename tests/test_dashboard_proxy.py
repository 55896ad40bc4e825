"""The dashboards through the real server: who gets in, the WebSockets, Voila's own port."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator

import orjson
import pytest
import tornado.httpclient
import tornado.websocket

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

PAGE = "/management-dashboard/"
SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
_STARTED = re.compile(r"Voila for (\S+) started \(pid (\d+), port (\d+)\)")


class Client:
    """A keep-alive HTTP client with a cookie jar, like a browser without JavaScript."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=180)
        sent = {"Cookie": self.cookie_header(), **(headers or {})}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        connection.close()
        return answer

    def cookie_header(self) -> str:
        return "; ".join(f"{key}={value}" for key, value in self.cookies.items())

    def log_in(self, path: str, fields: dict[str, str]) -> int:
        self.request("GET", path)
        status, _, _ = self.request("POST", path, {**fields, "_xsrf": self.cookies["_xsrf"]})
        return status


def manager(server: ServerProcess) -> Client:
    client = Client(server)
    assert client.log_in("/management/login", {"username": DEMO_MANAGER,
                                                "password": DEMO_PASSWORD}) == 303
    return client


def resident(server: ServerProcess) -> Client:
    client = Client(server)
    assert client.log_in("/profile", {"meter_id": "999999999", "password": DEMO_PASSWORD}) == 303
    return client


def voila_children(server: ServerProcess) -> dict[str, tuple[int, int]]:
    """Public path -> (pid, port) of the latest start of each Voila child, from the log."""
    found = {}
    for path, pid, port in _STARTED.findall(server.log_path.read_text()):
        found[path] = (int(pid), int(port))
    return found


def kernel_id(page: bytes) -> str:
    match = re.search(rb'"kernelId": "([0-9a-f-]{36})"', page)
    assert match, "the page names its kernel"
    return match.group(1).decode()


def open_page(client: Client, path: str = PAGE, timeout_s: float = 240) -> bytes:
    """GET a dashboard page until it is served (the first kernels may still be warming)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, _, body = client.request("GET", path)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body[:500]
            return body
        time.sleep(2)


async def connect_socket(server: ServerProcess, path: str, cookies: str,
                         origin: str | None = None, subprotocols: list[str] | None = None
                         ) -> tornado.websocket.WebSocketClientConnection:
    headers = {"Cookie": cookies, "Origin": origin or server.url}
    request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{server.port}{path}",
                                             headers=headers, request_timeout=60)
    return await tornado.websocket.websocket_connect(request, subprotocols=subprotocols)


def socket_refused(server: ServerProcess, path: str, cookies: str,
                   origin: str | None = None) -> int:
    async def attempt() -> int:
        try:
            connection = await connect_socket(server, path, cookies, origin)
        except tornado.httpclient.HTTPClientError as error:
            return error.code
        connection.close()
        return 101
    return asyncio.run(attempt())


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo with dashboards, one preheated kernel per notebook; its page served once."""
    server = ServerProcess(tmp_path_factory.mktemp("proxy") / "data", timezone="Asia/Singapore",
                           demo=True, dashboards=True, extra=["--voila-kernels", "1"])
    server.start()
    open_page(manager(server))
    yield server
    if server.process is not None and server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def manager_page(dashboard_server: ServerProcess) -> tuple[Client, bytes]:
    client = manager(dashboard_server)
    return client, open_page(client)


def test_without_login_the_page_sends_the_browser_to_the_management_login(dashboard_server):
    status, headers, _ = Client(dashboard_server).request("GET", PAGE,
                                                          headers={"Accept": "text/html"})
    assert status == 302
    assert headers["location"] == "/management/login?next=%2Fmanagement-dashboard%2F"


def test_without_login_nothing_under_the_dashboard_paths_is_served(dashboard_server):
    client = Client(dashboard_server)
    for path in (PAGE, PAGE + "voila/static/voila.js", PAGE + "api/kernels",
                 "/analysis/", "/analysis/voila/static/voila.js"):
        status, _, body = client.request("GET", path)
        assert status == 403, path
        assert b"Management login" in body or b"management account" in body
        assert b"jupyter" not in body.lower()
    status, _, _ = client.request("POST", PAGE + "voila/api/shutdown/x")
    assert status == 403


def test_without_login_the_kernel_websocket_is_refused(dashboard_server, manager_page):
    _, page = manager_page
    path = f"{PAGE}api/kernels/{kernel_id(page)}/channels"
    assert socket_refused(dashboard_server, path, cookies="") == 403


def test_a_resident_login_does_not_open_the_dashboards(dashboard_server, manager_page):
    client = resident(dashboard_server)
    status, _, body = client.request("GET", PAGE, headers={"Accept": "text/html"})
    assert status == 403
    assert b"/management/login" in body
    _, page = manager_page
    path = f"{PAGE}api/kernels/{kernel_id(page)}/channels"
    assert socket_refused(dashboard_server, path, client.cookie_header()) == 403


def test_a_manager_gets_the_rendered_dashboard_without_internet_links(manager_page):
    client, page = manager_page
    assert b"application/vnd.jupyter.widget-view+json" in page
    assert b"cdn.jsdelivr.net" not in page and b"cdnjs" not in page
    assets = re.findall(rb'(?:src|href)="(/management-dashboard/voila/[^"]+)"', page)
    assert assets
    for asset in assets:
        status, headers, body = client.request("GET", asset.decode())
        assert status == 200, asset
        assert body
        assert "max-age=" in headers["cache-control"]
        assert "set-cookie" not in headers
    status, headers, _ = client.request("GET", PAGE + "voila/static/voila.js")
    assert headers["cache-control"] == "private, max-age=3600"
    status, headers, _ = client.request("GET", PAGE)
    assert "max-age" not in headers.get("cache-control", "")


def test_each_dashboard_carries_the_site_header_of_the_manager_logged_in(dashboard_server):
    client = manager(dashboard_server)
    for path in (PAGE, "/analysis/"):
        page = open_page(client, path).decode()
        header = re.search(r'<header class="mm-site-header">.*?</header>', page, re.S)
        assert header, path
        assert page.index('<header class="mm-site-header">') < page.index('id="rendered_cells"')
        assert "metermatrix:site-header" not in page
        assert f'<span class="mm-user" title="Logged in">{DEMO_MANAGER}</span>' in header[0]
        assert 'href="/management/"' in header[0]
        assert re.search(r'<form class="mm-logout" method="post" action="/management/logout">'
                         r'\s*<input type="hidden" name="_xsrf" value="[^"]+"', header[0])


def test_the_headers_log_out_works_with_its_token_and_only_with_it(dashboard_server):
    client = manager(dashboard_server)
    page = open_page(client, "/analysis/").decode()
    token = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert token
    status, _, _ = client.request("POST", "/management/logout", {})
    assert status == 403  # no token: refused, as the site's own log-out refuses it
    status, headers, _ = client.request("POST", "/management/logout", {"_xsrf": token[1]})
    assert (status, headers["location"]) == (303, "/management/login")
    status, _, _ = client.request("GET", "/analysis/", headers={"Accept": "text/html"})
    assert status == 302


def test_the_kernel_websocket_answers_with_the_subprotocol_voila_chose(dashboard_server,
                                                                       manager_page):
    client, page = manager_page
    path = f"{PAGE}api/kernels/{kernel_id(page)}/channels"

    async def exchange() -> tuple[str | None, dict]:
        framed = await connect_socket(dashboard_server, path, client.cookie_header(),
                                      subprotocols=[SUBPROTOCOL])
        chosen = framed.selected_subprotocol
        framed.close()
        plain = await connect_socket(dashboard_server, path, client.cookie_header())
        header = {"msg_id": "test-1", "username": "test", "session": "test", "version": "5.3",
                  "msg_type": "kernel_info_request", "date": "2026-01-01T00:00:00Z"}
        await plain.write_message(orjson.dumps({
            "header": header, "parent_header": {}, "metadata": {}, "content": {},
            "channel": "shell", "buffers": []}).decode())
        while True:
            message = await asyncio.wait_for(plain.read_message(), 60)
            assert message is not None, "the kernel socket closed"
            reply = orjson.loads(message)
            if reply["header"]["msg_type"] == "kernel_info_reply":
                plain.close()
                return chosen, reply

    chosen, reply = asyncio.run(exchange())
    assert chosen == SUBPROTOCOL
    assert reply["parent_header"]["msg_id"] == "test-1"
    assert reply["content"]["status"] == "ok"


def test_a_cross_origin_websocket_is_refused_even_for_a_manager(dashboard_server, manager_page):
    client, page = manager_page
    path = f"{PAGE}api/kernels/{kernel_id(page)}/channels"
    assert socket_refused(dashboard_server, path, client.cookie_header(),
                          origin="http://attacker.example") == 403


def test_the_shutdown_beacon_needs_the_same_origin_but_no_xsrf_token(dashboard_server):
    client = manager(dashboard_server)
    kernel = kernel_id(open_page(client))
    beacon = f"{PAGE}voila/api/shutdown/{kernel}"
    status, _, _ = client.request("POST", beacon, headers={"Origin": "http://attacker.example"})
    assert status == 403
    status, _, _ = client.request("POST", beacon, headers={"Origin": dashboard_server.url})
    assert status == 204
    status, _, _ = client.request("GET", f"{PAGE}api/kernels/{kernel}")
    assert status == 404


def test_voilas_own_port_refuses_requests_without_the_token(dashboard_server):
    children = voila_children(dashboard_server)
    assert set(children) == {PAGE, "/analysis/"}
    for path, (_, port) in children.items():
        assert port != dashboard_server.port
        for token in ("", "?token=wrong"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", path + token)
            response = connection.getresponse()
            assert response.status in (302, 403), (path, token)
            assert b"widget-view" not in response.read()
            connection.close()


def test_a_killed_voila_child_is_started_again(dashboard_server):
    pid, port = voila_children(dashboard_server)["/analysis/"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while voila_children(dashboard_server)["/analysis/"][0] == pid:
        assert time.monotonic() < deadline, "the child was not started again"
        time.sleep(0.5)
    page = open_page(manager(dashboard_server), "/analysis/?meters=999999999")
    assert b"application/vnd.jupyter.widget-view+json" in page


def test_a_voila_that_does_not_answer_gets_an_error_page(dashboard_server):
    client = manager(dashboard_server)
    pid, _ = voila_children(dashboard_server)[PAGE]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, _, body = client.request("GET", PAGE + "voila/static/voila.js")
        waited_s = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status == 504
    assert b"did not answer in time" in body
    assert waited_s < 60


def test_login_goes_only_to_pages_of_this_site(dashboard_server):
    client = Client(dashboard_server)
    client.request("GET", "/management/login")
    status, headers, _ = client.request(
        "POST", "/management/login?next=//attacker.example/x",
        {"username": DEMO_MANAGER, "password": DEMO_PASSWORD, "_xsrf": client.cookies["_xsrf"]})
    assert status == 303
    assert headers["location"] == "/management"
    status, _, body = client.request("GET", "/management")
    assert status == 200
    assert b'href="/management-dashboard/"' in body and b'href="/analysis/"' in body


def test_after_logout_the_dashboards_are_closed(dashboard_server):
    client = manager(dashboard_server)
    status, _, _ = client.request("POST", "/management/logout",
                                  {"_xsrf": client.cookies["_xsrf"]})
    assert status == 303
    status, _, _ = client.request("GET", PAGE + "voila/static/voila.js")
    assert status == 403


def test_failed_management_logins_are_limited(dashboard_server):
    # Last against this server: the address is locked out afterwards.
    client = Client(dashboard_server)
    client.request("GET", "/management/login")
    form = {"username": "nobody-here", "password": "wrong password", "_xsrf": ""}
    statuses = []
    for _ in range(6):
        form["_xsrf"] = client.cookies["_xsrf"]
        statuses.append(client.request("POST", "/management/login", form)[0])
    assert statuses == [401] * 5 + [429]


def test_a_manager_added_with_the_cli_logs_in_and_is_told_dashboards_are_off(
        server: ServerProcess):
    added = subprocess.run(
        [sys.executable, "-c", "from metermatrix.cli import run; run()", "admin", "add", "boss",
         "--password-stdin", "--data-dir", str(server.data_dir)],
        input="a long enough password\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    client = Client(server)
    assert client.log_in("/management/login", {"username": "boss",
                                                "password": "a long enough password"}) == 303
    status, _, body = client.request("GET", PAGE)
    assert status == 404
    assert b"dashboards are switched off" in body
