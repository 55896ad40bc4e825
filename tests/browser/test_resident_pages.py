"""A resident in a real browser: register, log out, log in, every period, CSV, screenshot."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from metermatrix.accounts import DEMO_PASSWORD
from metermatrix.activation import activation_code, load_activation_key
from metermatrix.demo import DEMO_FILE
from metermatrix.loadshape import day_energy_wh
from metermatrix.periods import RESIDENT_PERIODS, last_due_boundary
from tests.browser.conftest import watch_policy_violations
from tests.browser.layout import MEASURE, VIEWPORTS, check_layout
from tests.conftest import ServerProcess, fixture_clock

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "consumption.png"
TIMEZONE = "Asia/Singapore"
#: Local time of the server's clock unless $METERMATRIX_TEST_CLOCK says otherwise.
CLOCK_AT = "14:10"
NEW_METER = 123_456_789
PASSWORD = "a long enough password"
TITLES = {"prev-hr": "Previous hour", "current-day": "Today", "current-week": "This week",
          "current-month": "This month", "prev-month": "Last month"}


def send_recent(server: ServerProcess, meter_id: int, skip: frozenset[int] = frozenset(),
                only_today: bool = False) -> int:
    """Send the meter's last 48 due half hours (load model values), or only today's;
    ``skip`` names slots never sent. Returns how many of today's readings were sent."""
    tz = ZoneInfo(TIMEZONE)
    boundary = last_due_boundary(server.now(), tz)
    _, status = server.request("GET", "/api/v1/status")
    today = date.fromisoformat(orjson.loads(status)["open_day"])  # past the close: tomorrow
    sent_today = 0
    for back in range(48, 0, -1):
        start = boundary - timedelta(minutes=30 * back)
        day = start.date()
        slot = (start.hour * 60 + start.minute) // 30
        if slot in skip or (only_today and day != today):
            continue
        status, _ = server.post_packet(meter_id, start + timedelta(minutes=31),
                                       int(day_energy_wh(meter_id, day, seed=2026)[slot]) / 1000)
        assert status == 201
        sent_today += day == today
    return sent_today


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """The demo data, plus today's readings of the West meters (999999999 misses one)."""
    server = ServerProcess(tmp_path_factory.mktemp("browser") / "data", timezone=TIMEZONE,
                           demo=True, clock_at=fixture_clock(CLOCK_AT))
    server.start()
    data = orjson.loads(DEMO_FILE.read_bytes())
    for meter in (int(key) for key, entry in data.items() if entry.get("region") == "West"):
        send_recent(server, meter, skip=frozenset({19}) if meter == 999_999_999 else frozenset(),
                    only_today=True)
    yield server  # type: ignore[misc]
    server.stop()


def log_in(page: Page, server: ServerProcess, meter: str, password: str) -> None:
    page.goto(server.url + "/profile")
    page.fill("#meter_id", meter)
    page.fill("#password", password)
    page.click("button.primary")


def test_register_log_out_log_in_and_read_every_period_without_javascript(
        browser: Browser, demo_server: ServerProcess, tmp_path: Path) -> None:
    sent_today = send_recent(demo_server, NEW_METER, skip=frozenset({1}))
    context = browser.new_context(java_script_enabled=False, accept_downloads=True)
    page = context.new_page()
    refused = watch_policy_violations(page)
    page.goto(demo_server.url + "/")
    page.click("text=New user")
    page.fill("#name", "Nur Aisyah")
    page.fill("#fin_no", "G1234567X")
    page.fill("#meter_id", "123-456-789")
    code = activation_code(load_activation_key(demo_server.data_dir), NEW_METER)
    page.fill("#activation_code", code.lower())
    page.select_option("#region", "West")
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD + "!")
    page.click("button.primary")
    expect(page.locator("#password_confirm-error")).to_have_text(
        "The two passwords are not the same.")
    expect(page.locator("#name")).to_have_value("Nur Aisyah")
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(f"{demo_server.url}/profile/{NEW_METER}")
    expect(page.locator("h1")).to_have_text("Hello, Nur Aisyah")
    expect(page.locator(".facts")).to_contain_text("*****567X")

    page.click("text=Log out")
    expect(page).to_have_url(demo_server.url + "/")
    log_in(page, demo_server, "123-456-789", PASSWORD)
    expect(page).to_have_url(f"{demo_server.url}/profile/{NEW_METER}")

    for name in RESIDENT_PERIODS:
        page.click(f"a[href='/profile/{NEW_METER}/consumption?period={name}']")
        expect(page.locator("h1")).to_contain_text(TITLES[name])
        expect(page.locator("figure.chart svg:visible")).to_be_visible()
        total = page.locator(".card.total strong")
        expect(total).not_to_have_text("0.00 kWh")  # a period without readings is no zero
        if name == "prev-hr" or (name == "current-day" and sent_today):
            expect(total).to_contain_text("kWh")
        expect(page.locator("table.readings")).to_be_visible()

    page.locator(".period-tabs").get_by_role("link", name="Today", exact=True).click()
    with page.expect_download() as download:
        page.click("text=Download CSV")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 48 and rows[0]["meter_id"] == f"{NEW_METER:09d}"
    statuses = [row["status"] for row in rows]
    if statuses[1] != "pending":
        assert statuses[1] == "missing" and rows[1]["energy_kwh"] == ""
    assert refused == []
    context.close()


def test_consumption_page_screenshot_for_the_readme(browser: Browser,
                                                    demo_server: ServerProcess) -> None:
    """The demo resident's day, with one half hour that never arrived; saved for the README."""
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    log_in(page, demo_server, "999999999", DEMO_PASSWORD)
    page.goto(demo_server.url + "/profile/999999999/consumption?period=current-day")
    expect(page.locator("figure.chart svg:visible")).to_be_visible()
    tz = ZoneInfo(TIMEZONE)
    midnight = datetime.combine(demo_server.now().astimezone(tz).date(), time(0), tz)
    if last_due_boundary(demo_server.now(), tz) > midnight:
        expect(page.locator(".card.total strong")).to_contain_text("kWh")
    else:  # just after midnight nothing of today is due yet: no total, and no zero
        expect(page.locator(".card.total strong")).to_have_text("—")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 20_000
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    log_in(phone, demo_server, "999-999-999", DEMO_PASSWORD)
    phone.goto(demo_server.url + "/profile/999999999/consumption?period=current-month")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # the page fits a phone, its graph included


NEXT_TRICKS = ["/%09/127.0.0.1:{port}/x", "/%0a/127.0.0.1:{port}/x", "//127.0.0.1:{port}/x",
               "/%5C127.0.0.1:{port}/x", "/%20/127.0.0.1:{port}/x"]


@pytest.mark.parametrize("trick", NEXT_TRICKS)
def test_next_tricks_cannot_take_the_browser_off_the_site(
        browser: Browser, demo_server: ServerProcess, trick: str) -> None:
    elsewhere = demo_server.port + 1
    query = "?next=" + trick.format(port=elsewhere)
    page = browser.new_page()
    page.goto(demo_server.url + "/profile" + query)
    page.fill("#meter_id", "999999999")
    page.fill("#password", DEMO_PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(demo_server.url + "/profile/999999999")
    page.goto(demo_server.url + "/profile" + query)  # already logged in
    expect(page).to_have_url(demo_server.url + "/profile/999999999")
    page.goto(demo_server.url + "/management/login" + query)
    page.fill("#username", "manager")
    page.fill("#password", DEMO_PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(demo_server.url + "/management")
    page.close()


def framed(page: Page, outer_url: str, inner_url: str) -> bool:
    """Whether ``inner_url`` renders inside an iframe of a page served at ``outer_url``."""
    html = f'<!doctype html><title>outer</title><iframe src="{inner_url}"></iframe>'
    page.route(outer_url, lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(outer_url)
    page.wait_for_timeout(1500)
    child = page.frames[1]
    return child.url == inner_url and child.locator("#meter_id").count() == 1


def test_a_page_renders_in_a_frame_of_this_site_but_not_of_another(
        browser: Browser, demo_server: ServerProcess) -> None:
    page = browser.new_page()
    assert framed(page, demo_server.url + "/frame-test", demo_server.url + "/profile")
    other = browser.new_page()
    assert not framed(other, "http://attacker.example/", demo_server.url + "/profile")
    page.close()
    other.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_pages_fit_desktop_and_phone_with_the_whole_chart_and_legend(
        browser: Browser, demo_server: ServerProcess, viewport: str) -> None:
    page = browser.new_page(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
    log_in(page, demo_server, "999999999", DEMO_PASSWORD)
    expect(page).to_have_url(demo_server.url + "/profile/999999999")
    check_layout(page.evaluate(MEASURE), f"{viewport} profile")
    for name in RESIDENT_PERIODS:
        page.goto(demo_server.url + f"/profile/999999999/consumption?period={name}")
        expect(page.locator("figure.chart svg:visible")).to_have_count(1)
        check_layout(page.evaluate(MEASURE), f"{viewport} {name}")
    page.close()
