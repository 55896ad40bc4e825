"""Error pages in the site's layout, the favicon and the expired-form answer, against a
real server (and, for a 500, the application in this process with a route that fails)."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from metermatrix.service import MeterService
from metermatrix.web.app import make_app
from metermatrix.web.base import BaseHandler, JSONHandler
from tests.conftest import ServerProcess, fixture_clock, free_port
from tests.test_residents import CLOCK, Client, register
from tests.test_routines import Clock, at, settings_for

EXPIRED = "Your session expired, please try again"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("errors") / "data",
                           timezone="Asia/Singapore", clock_at=fixture_clock(CLOCK))
    server.start()
    yield server
    server.stop()


def in_layout(text: str) -> bool:
    """Whether a page is drawn in the site's layout: header, stylesheet, favicon, footer."""
    return ('<header class="top">' in text and 'rel="stylesheet"' in text
            and 'rel="icon"' in text and "<footer>" in text)


@pytest.mark.parametrize("path", ["/no-such-page", "/profile/101000001/nothing",
                                  "/static-not/x.css", "/management/nothing"])
def test_an_unknown_url_is_a_404_page_in_the_sites_layout(shared: ServerProcess,
                                                          path: str) -> None:
    answer = Client(shared).get(path)
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert in_layout(answer.text)
    assert "There is no such page" in answer.text and 'href="/"' in answer.text
    assert "Traceback" not in answer.text


def test_an_unknown_api_url_answers_json(shared: ServerProcess) -> None:
    answer = Client(shared).get("/api/v1/no-such-thing")
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {"error": "Not Found"}


def test_a_post_to_an_unknown_url_is_not_found_rather_than_expired(shared: ServerProcess) -> None:
    answer = Client(shared).request("POST", "/no-such-form", {"x": "1"})
    assert answer.status == 404 and "There is no such page" in answer.text


def test_the_favicon_is_served_and_every_page_links_it(shared: ServerProcess) -> None:
    client = Client(shared)
    icon = client.get("/favicon.ico")
    assert icon.status == 200 and icon.body[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert icon.headers["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    for path in ("/", "/profile", "/register", "/management/login"):
        page = client.get(path).text
        link = re.search(r'<link rel="icon" href="([^"]+)"', page)
        assert link, path
        assert client.get(link[1]).body == icon.body


def test_a_form_sent_after_the_cookies_were_cleared_says_the_session_expired(
        shared: ServerProcess) -> None:
    client = Client(shared)  # no cookies at all: the login form's token is missing
    answer = client.request("POST", "/profile", {"meter_id": "101000001", "password": "x"})
    assert answer.status == 403
    assert in_layout(answer.text) and EXPIRED in answer.text
    assert "You can only see the meter" not in answer.text
    assert 'href="/profile"' in answer.text  # back to log in


def test_a_stale_token_on_a_logged_in_form_says_the_session_expired(
        shared: ServerProcess) -> None:
    client = register(shared, "101000003")
    answer = client.request("POST", "/logout", {"_xsrf": "2|00000000|" + "0" * 32 + "|1"})
    assert answer.status == 403 and EXPIRED in answer.text
    assert client.get("/profile/101000003").status == 200  # still logged in


def test_the_management_login_form_expired_links_back_to_its_login(
        shared: ServerProcess) -> None:
    answer = Client(shared).request("POST", "/management/login",
                                    {"username": "manager", "password": "x"})
    assert answer.status == 403 and EXPIRED in answer.text
    assert 'href="/management/login"' in answer.text


def test_another_residents_meter_still_says_whose_meter_you_can_see(
        shared: ServerProcess) -> None:
    owner = register(shared, "101000004")
    answer = owner.get("/profile/101000005")
    assert answer.status == 403 and "You can only see the meter" in answer.text
    assert in_layout(answer.text)


class FailingPage(BaseHandler):
    """A page whose code fails (a 500)."""

    def get(self) -> None:
        raise RuntimeError("a secret detail of the failure")


class FailingAPI(JSONHandler):
    """An API route whose code fails (a 500)."""

    def get(self) -> None:
        raise RuntimeError("a secret detail of the failure")


def test_a_failure_is_a_500_page_in_the_layout_and_json_on_the_api(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", reader_processes=0)

    async def main() -> None:
        service = MeterService(settings, clock=Clock(at(date(2025, 2, 8), 10, 5)))
        await service.start()
        port = free_port()
        server = HTTPServer(make_app(service, extra_routes=[
            (r"/failing", FailingPage), (r"/api/v1/failing", FailingAPI)]))
        server.listen(port, "127.0.0.1")
        http = AsyncHTTPClient(force_instance=True)
        url = f"http://127.0.0.1:{port}"
        try:
            page = await http.fetch(url + "/failing", raise_error=False)
            api = await http.fetch(url + "/api/v1/failing", raise_error=False)
        finally:
            http.close()
            server.stop()
            await service.stop()
        text = page.body.decode()
        assert page.code == 500 and in_layout(text)
        assert "Something went wrong on our side" in text and "secret detail" not in text
        assert api.code == 500 and orjson.loads(api.body) == {"error": "Internal Server Error"}

    asyncio.run(main())


def test_an_expired_form_is_quoted_without_the_form_fields(shared: ServerProcess) -> None:
    secret = "a-password-nobody-sees-42"
    answer = Client(shared).request("POST", "/register", {"password": secret})
    assert answer.status == 403 and secret not in urllib.parse.unquote(answer.text)
