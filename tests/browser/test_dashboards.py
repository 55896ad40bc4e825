"""The dashboards in a real browser: a manager logs in, the charts and map draw, widgets redraw."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD
from metermatrix.demo import DEMO_FILE
from metermatrix.periods import last_due_boundary
from metermatrix.slots import interval_start
from tests.browser.conftest import watch_policy_violations
from tests.conftest import ServerProcess, fixture_clock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEZONE = "Asia/Singapore"
#: Local time of the server's clock unless $METERMATRIX_TEST_CLOCK says otherwise.
CLOCK_AT = "14:10"
LOAD_TIMEOUT_MS = 240_000
REDRAW_TIMEOUT_MS = 60_000


def west_meters() -> list[int]:
    data = orjson.loads(DEMO_FILE.read_bytes())
    return [int(key) for key, entry in data.items() if entry.get("region") == "West"]


def send_today(server: ServerProcess, meter_id: int) -> int:
    """0.25 kWh for every half hour of today already due; returns how many were due
    (-1 past the close, when today is closed already)."""
    tz = ZoneInfo(TIMEZONE)
    now = server.now()
    _, status = server.request("GET", "/api/v1/status")
    if orjson.loads(status)["open_day"] != now.astimezone(tz).date().isoformat():
        return -1  # past the close: today is closed (the demo filled it), tomorrow is open
    boundary = last_due_boundary(now, tz)
    for slot in range(48):
        start = interval_start(now.astimezone(tz).date(), slot, tz)
        if start + timedelta(minutes=30) > boundary:
            return slot
        status, _ = server.post_packet(meter_id, start + timedelta(minutes=31), 0.25)
        assert status == 201
    return 48


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo with dashboards; the West meters have sent today's readings so far."""
    server = ServerProcess(tmp_path_factory.mktemp("dashboards") / "data", timezone=TIMEZONE,
                           demo=True, dashboards=True, extra=["--voila-kernels", "1"],
                           clock_at=fixture_clock(CLOCK_AT))
    server.start()
    server.west_sent_today = min(send_today(server, meter_id) for meter_id in west_meters())
    yield server
    server.stop()


def watch_outside_requests(page: Page, server: ServerProcess) -> list[str]:
    """Every request the page makes to anywhere but our server (the CDN would be one)."""
    outside: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(
        (server.url, "data:", "blob:")) else outside.append(request.url))
    return outside


def manager_opens(page: Page, server: ServerProcess, path: str) -> None:
    page.set_default_timeout(LOAD_TIMEOUT_MS)  # the first page waits for the kernels to warm
    page.goto(server.url + path)
    expect(page).to_have_url(f"{server.url}/management/login?{urlencode({'next': path})}")
    page.fill("#username", DEMO_MANAGER)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(server.url + path)


def drawn(page: Page, css_class: str) -> str:
    """Wait until the chart image has pixels; its current src."""
    page.wait_for_function(
        "c => { const i = document.querySelector('img.' + c); return i && i.naturalWidth > 100 }",
        arg=css_class, timeout=LOAD_TIMEOUT_MS)
    return str(page.locator(f"img.{css_class}").get_attribute("src"))


def dropdown(page: Page, label: str):
    return page.locator(".widget-dropdown", has_text=label).locator("select")


def test_a_manager_sees_the_region_chart_and_map_and_the_period_redraws(
        browser: Browser, dashboard_server: ServerProcess) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    outside = watch_outside_requests(page, dashboard_server)
    refused = watch_policy_violations(page)
    manager_opens(page, dashboard_server, "/management-dashboard/")
    bars, _ = drawn(page, "mm-region-bars"), drawn(page, "mm-region-map")
    drawn(page, "mm-daily-lines")
    status = page.locator(".mm-status")
    expect(status).to_contain_text("Today")
    consumption = page.locator(".mm-consumption table")
    expect(consumption.locator("tbody tr")).to_have_count(5)
    expect(consumption).to_contain_text("West")
    silent = page.locator(".mm-silent")
    if dashboard_server.west_sent_today < 0:  # past the close: the demo's last day, complete
        expect(silent).to_contain_text("0 meters sent nothing today")
    elif dashboard_server.west_sent_today:
        expect(silent).to_contain_text(f"{42 - len(west_meters())} meters sent nothing today")
        expect(silent).not_to_contain_text("Aashima")
    else:  # just after midnight no half hour of today is due yet: every meter is silent
        expect(silent).to_contain_text("42 meters sent nothing today")

    dropdown(page, "Period").select_option(label="Yesterday")
    expect(status).to_contain_text("Yesterday", timeout=REDRAW_TIMEOUT_MS)
    assert drawn(page, "mm-region-bars") != bars

    dropdown(page, "Region").select_option(label="West")
    expect(status).to_contain_text("drawn in", timeout=REDRAW_TIMEOUT_MS)
    expect(consumption.locator("tbody tr")).to_have_count(1, timeout=REDRAW_TIMEOUT_MS)
    expect(consumption).to_contain_text("West")
    expect(page.locator(".mm-top")).not_to_contain_text("North-East")
    assert outside == [] and refused == []
    page.close()


def test_a_custom_range_before_its_start_is_reported_not_drawn(
        browser: Browser, dashboard_server: ServerProcess) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    manager_opens(page, dashboard_server, "/management-dashboard/")
    drawn(page, "mm-region-bars")
    dropdown(page, "Period").select_option(label="Custom range")
    expect(page.locator(".mm-status")).to_contain_text("Custom range",
                                                       timeout=REDRAW_TIMEOUT_MS)
    first = page.locator(".widget-text", has_text="From").locator("input")
    first.fill("2030-01-01")
    first.press("Enter")
    expect(page.locator(".mm-status")).to_contain_text("the end date is before the start date",
                                                       timeout=REDRAW_TIMEOUT_MS)
    page.close()


def test_a_resident_is_shown_the_management_login_instead(
        browser: Browser, dashboard_server: ServerProcess) -> None:
    page = browser.new_page()
    page.goto(dashboard_server.url + "/profile")
    page.fill("#meter_id", "999999999")
    page.fill("#password", DEMO_PASSWORD)
    page.click("button.primary")
    response = page.goto(dashboard_server.url + "/management-dashboard/")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("management login required")
    page.click("text=Log in with a management account")
    expect(page.locator("h1")).to_have_text("Management login")
    page.close()


def test_the_analysts_notebook_draws_the_heat_map_of_the_meters_asked_for(
        browser: Browser, dashboard_server: ServerProcess) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    outside = watch_outside_requests(page, dashboard_server)
    refused = watch_policy_violations(page)
    manager_opens(page, dashboard_server, "/analysis/?meters=999999999&period=current-week")
    for chart in ("mm-heatmap", "mm-profile", "mm-daily", "mm-comparison"):
        drawn(page, chart)
    expect(page.locator(".mm-status")).to_contain_text("This week")
    expect(page.locator(".mm-status")).to_contain_text("1 meters")
    assert outside == [] and refused == []
    page.close()
