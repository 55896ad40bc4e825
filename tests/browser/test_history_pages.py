"""Moving through a resident's history in a real browser, with JavaScript off: the date
picker (a GET form), previous / next links, the year view and the Green Button download."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import watch_policy_violations
from tests.browser.layout import MEASURE, VIEWPORTS, check_layout
from tests.conftest import ServerProcess
from tests.greenbutton_schema import validation_errors
from tests.history_data import METER, NOW, PASSWORD, history_server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PAGE = f"/profile/{METER}/consumption"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = history_server(tmp_path_factory.mktemp("history-browser") / "data")
    yield started
    started.stop()


def logged_in(browser: Browser, server: ServerProcess, **options: object) -> Page:
    context = browser.new_context(java_script_enabled=False, accept_downloads=True,
                                  **options)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(server.url + "/profile")
    page.fill("#meter_id", str(METER))
    page.fill("#password", PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(f"{server.url}/profile/{METER}")
    return page


def test_the_date_picker_and_previous_next_work_without_javascript(
        browser: Browser, server: ServerProcess) -> None:
    page = logged_in(browser, server)
    refused = watch_policy_violations(page)
    page.goto(server.url + PAGE + "?period=current-day")
    picker = page.locator("form.history-picker")
    picker.locator("select[name=period]").select_option("week")
    picker.locator("input[name=date]").fill("2026-06-03")
    picker.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{server.url}{PAGE}?period=week&date=2026-06-03")
    expect(page.locator("h1")).to_contain_text("Week of Mon 1 Jun 2026")
    expect(page.locator("figure.chart svg:visible")).to_be_visible()
    expect(page.locator("table.readings tr.missing")).to_have_count(1)  # Wednesday 3 June

    page.click("a.history-previous")
    expect(page.locator("h1")).to_contain_text("Week of Mon 25 May 2026")
    page.click("a.history-next")
    page.click("a.history-next")
    expect(page.locator("h1")).to_contain_text("Week of Mon 8 Jun 2026")
    expect(page.locator("form.history-picker input[name=date]")).to_have_value("2026-06-08")

    picker = page.locator("form.history-picker")
    picker.locator("select[name=period]").select_option("day")
    picker.locator("input[name=date]").fill(NOW.date().isoformat())
    picker.get_by_role("button", name="Show").click()
    expect(page.locator("h1")).to_contain_text("Wed 18 Nov 2026")
    expect(page.locator("a.history-next")).to_have_count(0)  # tomorrow is still to come
    assert refused == []
    page.context.close()


def test_the_year_view_and_a_period_before_the_first_reading(
        browser: Browser, server: ServerProcess) -> None:
    page = logged_in(browser, server, viewport={"width": 1100, "height": 1000})
    page.goto(server.url + PAGE + "?period=year&date=2026-11-18")
    expect(page.locator("h1")).to_contain_text("2026")
    expect(page.locator("figure.chart svg:visible")).to_contain_text("kWh per month")
    expect(page.locator("table.readings tbody tr")).to_have_count(11)
    page.locator("figure.chart").screenshot(path=str(ROOT / "docs" / "year.png"))
    page.click("a.history-previous")
    expect(page.locator("h1")).to_contain_text("2025")
    expect(page.locator("a.history-previous")).to_have_count(0)  # readings begin in 2025

    page.goto(server.url + PAGE + "?period=month&date=2025-08-15")
    expect(page.locator(".no-data")).to_contain_text("before the meter's first reading")
    expect(page.locator("figure.chart")).to_have_count(0)
    page.click("a.history-next")
    expect(page.locator("h1")).to_contain_text("September 2025")
    page.context.close()


def test_the_green_button_link_downloads_a_valid_feed(browser: Browser,
                                                     server: ServerProcess) -> None:
    page = logged_in(browser, server)
    page.goto(server.url + PAGE + "?period=day&date=2026-11-17")
    with page.expect_download() as download:
        page.click("text=Green Button")
    assert download.value.suggested_filename == f"metermatrix-{METER}-day-2026-11-17.xml"
    assert validation_errors(Path(download.value.path()).read_bytes()) == []
    page.context.close()


def reloads_within(page: Page, url: str, minutes: int) -> bool:
    """Whether the page at ``url`` reloads itself within ``minutes`` (the page's clock
    is Playwright's, run forward; the server's stays where it is)."""
    page.clock.install()
    page.goto(url)
    page.evaluate("window.beforeReload = true")
    try:
        with page.expect_event("load", timeout=3000):
            page.clock.run_for(minutes * 60_000)
    except PlaywrightTimeoutError:
        return False
    return bool(page.evaluate("window.beforeReload === undefined"))


def test_todays_page_reloads_itself_where_javascript_runs(browser: Browser,
                                                          server: ServerProcess) -> None:
    page = logged_in_with_javascript(browser, server)
    refused = watch_policy_violations(page)
    assert reloads_within(page, server.url + PAGE + "?period=current-day", 11)
    expect(page.locator("p.updated")).to_contain_text("Last updated")
    expect(page.locator("a.refresh")).to_be_visible()
    assert refused == []
    page.context.close()


@pytest.mark.parametrize("query", ["period=current-week", "period=day&date=2026-11-17"])
def test_other_periods_stay_put(browser: Browser, server: ServerProcess, query: str) -> None:
    page = logged_in_with_javascript(browser, server)
    assert not reloads_within(page, server.url + PAGE + "?" + query, 11)
    page.context.close()


def logged_in_with_javascript(browser: Browser, server: ServerProcess,
                              **options: object) -> Page:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(server.url + "/profile")
    page.fill("#meter_id", str(METER))
    page.fill("#password", PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(f"{server.url}/profile/{METER}")
    return page


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_year_and_a_week_fit_desktop_and_phone(browser: Browser, server: ServerProcess,
                                                   viewport: str) -> None:
    page = logged_in_with_javascript(browser, server, viewport=VIEWPORTS[viewport])
    for query in ("period=year&date=2026-11-18", "period=week&date=2026-06-03",
                  "period=day&date=2026-11-17"):
        page.goto(server.url + PAGE + "?" + query)
        expect(page.locator("figure.chart svg:visible")).to_have_count(1)
        check_layout(page.evaluate(MEASURE), f"{viewport} {query}")
    page.context.close()
