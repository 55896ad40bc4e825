"""The dashboards' frame in a real browser: the site's header, phone and desktop layouts,
sharp charts, and the period's days in ISO form."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from metermatrix.accounts import DEMO_MANAGER
from tests.browser.test_dashboards import (
    CLOCK_AT,
    REDRAW_TIMEOUT_MS,
    TIMEZONE,
    drawn,
    dropdown,
    manager_opens,
)
from tests.conftest import ServerProcess, fixture_clock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
         "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1300, "height": 1000}, "device_scale_factor": 2}
PAGES = {"/management-dashboard/": ("mm-region-bars", "mm-daily-lines", "mm-region-map"),
         "/analysis/?meters=999999999": ("mm-heatmap", "mm-profile", "mm-daily",
                                         "mm-comparison")}


@pytest.fixture(scope="module")
def layout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo with dashboards, one preheated kernel per notebook."""
    server = ServerProcess(tmp_path_factory.mktemp("layout") / "data", timezone=TIMEZONE,
                           demo=True, dashboards=True, extra=["--voila-kernels", "1"],
                           clock_at=fixture_clock(CLOCK_AT))
    server.start()
    yield server
    server.stop()


def horizontal_overflow_px(page: Page) -> int:
    """How far the page reaches past the right edge of the viewport [CSS px]."""
    return int(page.evaluate("Math.max(document.documentElement.scrollWidth,"
                             " document.body.scrollWidth) - window.innerWidth"))


@pytest.mark.parametrize("path", list(PAGES))
def test_on_a_phone_the_controls_fit_the_screen_and_the_charts_scroll_sideways(
        browser: Browser, layout_server: ServerProcess, path: str) -> None:
    page = browser.new_page(**PHONE)
    manager_opens(page, layout_server, path)
    for css_class in PAGES[path]:
        drawn(page, css_class)
    assert horizontal_overflow_px(page) <= 0
    period = dropdown(page, "Period").bounding_box()
    assert period is not None
    assert period["x"] >= 0 and period["x"] + period["width"] <= 390
    header = page.locator("header.mm-site-header").bounding_box()
    assert header is not None and header["y"] < 5 and header["width"] <= 390
    chart = page.locator(f"img.{PAGES[path][0]}")
    box = chart.locator("xpath=..")
    chart_width = chart.evaluate("i => i.getBoundingClientRect().width")
    assert chart_width >= 600  # drawn at a legible size ...
    assert box.evaluate("b => b.clientWidth") <= 390  # ... and scrolled within its box
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")
    page.close()


@pytest.mark.parametrize("path", list(PAGES))
def test_on_a_desktop_the_charts_are_sharp_at_their_displayed_size(
        browser: Browser, layout_server: ServerProcess, path: str) -> None:
    page = browser.new_page(**DESKTOP, bypass_csp=True)  # to read the image's blob: URL
    manager_opens(page, layout_server, path)
    for css_class in PAGES[path]:
        drawn(page, css_class)
        sharp = page.evaluate(
            """async c => {
                 const image = document.querySelector('img.' + c);
                 const type = (await (await fetch(image.src)).blob()).type;
                 const shown = image.getBoundingClientRect().width * devicePixelRatio;
                 return {type, natural: image.naturalWidth, shown};
               }""", css_class)
        assert sharp["type"] == "image/svg+xml" or sharp["natural"] >= sharp["shown"], sharp
    assert horizontal_overflow_px(page) <= 0
    page.close()


def test_the_day_boxes_show_last_months_first_and_last_day_in_iso_form(
        browser: Browser, layout_server: ServerProcess) -> None:
    page = browser.new_page(**DESKTOP)
    manager_opens(page, layout_server, "/management-dashboard/")
    drawn(page, "mm-region-bars")
    dropdown(page, "Period").select_option(label="Last month")
    expect(page.locator(".mm-status")).to_contain_text("Last month", timeout=REDRAW_TIMEOUT_MS)
    today = layout_server.now().astimezone(ZoneInfo(TIMEZONE)).date()
    last = today.replace(day=1) - timedelta(days=1)
    for label, day in (("From", last.replace(day=1)), ("To", last)):
        box = page.locator(".widget-text", has_text=label).locator("input")
        expect(box).to_have_value(day.isoformat(), timeout=REDRAW_TIMEOUT_MS)
        expect(box).to_be_disabled()
        assert box.get_attribute("type") == "text"  # not the browser's locale (11/01/2026)
    page.close()


def test_the_header_names_the_manager_leads_home_and_logs_out(
        browser: Browser, layout_server: ServerProcess) -> None:
    page = browser.new_page(**DESKTOP)
    manager_opens(page, layout_server, "/analysis/")
    header = page.locator("header.mm-site-header")
    expect(header.locator(".mm-user")).to_have_text(DEMO_MANAGER)
    header.get_by_role("link", name="Management home").click()
    expect(page).to_have_url(layout_server.url + "/management/")
    expect(page.locator("#readings-today")).to_be_visible()
    page.go_back()
    page.locator("header.mm-site-header").get_by_role("button", name="Log out").click()
    expect(page).to_have_url(layout_server.url + "/management/login")
    page.goto(layout_server.url + "/analysis/")
    expect(page.locator("h1")).to_have_text("Management login")
    page.close()
