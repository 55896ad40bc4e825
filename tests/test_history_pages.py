"""Any day, week, month or year of a resident's history, and its Green Button download,
against a real server whose clock stands at a fixed instant (tests/history_data.py)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from lxml import etree

from tests.conftest import ServerProcess
from tests.greenbutton_schema import validation_errors
from tests.history_data import (
    DAY_KWH,
    FIRST_DAY,
    MISSING_DAY,
    MISSING_HALF_HOUR,
    NOW,
    PASSWORD,
    TZ,
    energy_wh,
    history_server,
)
from tests.test_residents import Client

METER = "101000050"
PAGE = f"/profile/{METER}/consumption"
API = f"/api/v1/meters/{METER}/consumption"
NS = {"atom": "http://www.w3.org/2005/Atom", "espi": "http://naesb.org/espi"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = history_server(tmp_path_factory.mktemp("history") / "data")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Client:
    resident = Client(server)
    assert resident.login(METER, PASSWORD).status == 303
    return resident


def total_on_page(text: str) -> float:
    return float(re.search(r'data-total-kwh="([\d.]+|nan)"', text)[1])  # type: ignore[index]


def test_any_date_opens_the_week_holding_it_with_previous_and_next(client: Client) -> None:
    page = client.get(f"{PAGE}?period=week&date=2026-11-12")
    assert page.status == 200
    assert "<h1>Week of Mon 9 Nov 2026" in page.text and "<svg" in page.text
    assert total_on_page(page.text) == pytest.approx(7 * DAY_KWH)
    assert f'href="{PAGE}?period=week&amp;date=2026-11-02">&larr; Week of Mon 2 Nov 2026' in (
        page.text)
    assert f'href="{PAGE}?period=week&amp;date=2026-11-16">Week of Mon 16 Nov 2026 &rarr;' in (
        page.text)
    assert "The week before" in page.text and "up to the same time" not in page.text


def test_the_picker_is_a_get_form_with_a_date_input_and_a_period_select(client: Client) -> None:
    page = client.get(f"{PAGE}?period=month&date=2026-06-20").text
    form = re.search(r'<form class="history-picker" method="get" action="([^"]+)">(.*?)</form>',
                     page, re.S)
    assert form is not None and form[1] == PAGE
    assert '<input type="date" name="date" value="2026-06-01"' in form[2]
    assert f'min="{FIRST_DAY.isoformat()}" max="{NOW.date().isoformat()}"' in form[2]
    assert '<option value="month" selected>' in form[2]
    for kind in ("day", "week", "year"):
        assert f'<option value="{kind}">' in form[2]
    # the form's fields give exactly the URL of a calendar period
    assert client.get(f"{PAGE}?period=day&date=2026-06-20").status == 200


def test_a_month_with_a_missing_day_says_so_and_never_counts_it_as_zero(client: Client) -> None:
    page = client.get(f"{PAGE}?period=month&date={MISSING_DAY.isoformat()}").text
    assert "<h1>June 2026" in page and "29 of 30 days with readings" in page
    assert total_on_page(page) == pytest.approx(29 * DAY_KWH)
    rows = list(csv.DictReader(io.StringIO(client.get(
        f"{PAGE}?period=month&date=2026-06-30&format=csv").text)))
    assert len(rows) == 30
    missing = next(row for row in rows if row["date"] == MISSING_DAY.isoformat())
    assert missing["energy_kwh"] == "" and missing["status"] == "missing"


def test_a_day_has_its_half_hours_and_the_json_takes_the_same_parameters(client: Client) -> None:
    day, slot = MISSING_HALF_HOUR
    document = client.get(f"{API}?period=day&date={day.isoformat()}").json()
    assert document["period"] == {  # type: ignore[comparison-overlap]
        "name": "day", "title": "Tue 17 Nov 2026", "resolution": "half-hour",
        "start": "2026-11-17T00:00:00+08:00", "end": "2026-11-18T00:00:00+08:00"}
    rows = document["rows"]
    assert len(rows) == 48 and rows[slot]["energy_kwh"] is None  # type: ignore[index]
    assert document["total_kwh"] == pytest.approx(DAY_KWH - energy_wh(slot) / 1000)
    assert document["intervals_missing"] == 1


def test_an_open_calendar_week_is_compared_like_for_like(client: Client) -> None:
    """The week holding today, at Wednesday 14:10, against last week up to Wednesday 14:00."""
    page = client.get(f"{PAGE}?period=week&date={NOW.date().isoformat()}").text
    assert "up to the same time" in page
    assert 'rel="next"' not in page  # next week is in the future
    document = client.get(f"{API}?period=week&date=2026-11-16").json()
    today_kwh = sum(energy_wh(slot) for slot in range(28)) / 1000
    missing_kwh = energy_wh(MISSING_HALF_HOUR[1]) / 1000
    assert document["total_kwh"] == pytest.approx(2 * DAY_KWH - missing_kwh + today_kwh)
    assert document["previous"]["total_kwh"] == pytest.approx(  # type: ignore[index]
        2 * DAY_KWH + today_kwh)


def test_the_calendar_day_of_today_is_compared_with_yesterday_up_to_the_same_time(
        client: Client) -> None:
    document = client.get(f"{API}?period=day&date={NOW.date().isoformat()}").json()
    today_kwh = sum(energy_wh(slot) for slot in range(28)) / 1000  # 00:00-14:00
    assert document["total_kwh"] == pytest.approx(today_kwh)
    assert document["previous"]["total_kwh"] == pytest.approx(  # type: ignore[index]
        today_kwh - energy_wh(MISSING_HALF_HOUR[1]) / 1000)  # yesterday missed 10:00-10:30


def test_a_year_is_twelve_monthly_bars_beside_the_year_before(client: Client) -> None:
    page = client.get(f"{PAGE}?period=year&date=2026-03-03").text
    assert "<h1>2026 <small>Thu 01 Jan \u2013 Thu 31 Dec 2026</small>" in page
    assert "kWh per month" in page
    assert page.count("<tr class=") == 11  # January..November; December is still to come
    for month in ("January", "June", "November"):
        assert f'<th scope="row">{month}</th>' in page
    assert ">2025</text>" in page and ">2026" in page  # both years in the legend
    document = client.get(f"{API}?period=year&date=2026-12-31").json()
    months = document["months"]
    assert [entry["month"] for entry in months] == [  # type: ignore[index,union-attr]
        f"2026-{month:02d}" for month in range(1, 13)]
    assert months[0]["energy_kwh"] == pytest.approx(31 * DAY_KWH)  # type: ignore[index]
    assert months[5]["status"] == "incomplete"  # type: ignore[index]  # June: a day missing
    assert months[8]["previous_kwh"] == pytest.approx(14 * DAY_KWH)  # type: ignore[index]
    assert months[0]["previous_kwh"] is None  # type: ignore[index]  # before the first reading
    assert months[11]["status"] == "pending"  # type: ignore[index]


def test_the_first_year_shows_no_bars_before_the_first_reading(client: Client) -> None:
    months = client.get(f"{API}?period=year&date=2025-10-10").json()["months"]
    assert [entry["status"] for entry in months][:9] == ["before"] * 8 + [  # type: ignore[index]
        "incomplete"]
    assert months[8]["energy_kwh"] == pytest.approx(14 * DAY_KWH)  # type: ignore[index]


@pytest.mark.parametrize("query, words", [
    ("period=day&date=2026-11-19", "in the future"),
    ("period=week&date=2026-11-23", "in the future"),
    ("period=year&date=2027-01-01", "in the future"),
    ("period=month&date=2025-08-31", "before the meter&#x27;s first reading, on Wed 17 Sep 2025"),
    ("period=day&date=2025-09-16", "before the meter&#x27;s first reading"),
])
def test_future_and_before_the_first_reading_are_said_not_drawn(
        client: Client, query: str, words: str) -> None:
    page = client.get(f"{PAGE}?{query}")
    assert page.status == 200 and words in page.text
    assert "<svg" not in page.text and "<table" not in page.text
    api = client.get(f"{API}?{query}")
    assert api.status == 404 and words.replace("&#x27;", "'") in str(api.json()["error"])
    assert client.get(f"{PAGE}?{query}&format=csv").status == 404
    assert client.get(f"{PAGE}?{query}&format=greenbutton").status == 404


def test_the_first_period_with_readings_has_no_previous_link(client: Client) -> None:
    page = client.get(f"{PAGE}?period=week&date={FIRST_DAY.isoformat()}").text
    assert 'rel="prev"' not in page and 'rel="next"' in page
    assert total_on_page(page) == pytest.approx(5 * DAY_KWH)  # Wednesday to Sunday


@pytest.mark.parametrize("query", ["period=week&date=2026-02-30", "period=week&date=tomorrow",
                                   "period=fortnight&date=2026-11-11"])
def test_a_wrong_date_or_calendar_period_is_refused(client: Client, query: str) -> None:
    assert client.get(f"{PAGE}?{query}").status == 400
    api = client.get(f"{API}?{query}")
    assert api.status == 400 and api.json()["calendar_periods"] == ["day", "week", "month",
                                                                    "year"]


def test_green_button_download_of_a_week_is_valid_and_leaves_gaps_out(client: Client) -> None:
    answer = client.get(f"{PAGE}?period=week&date=2026-11-18&format=greenbutton")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert 'filename="metermatrix-101000050-week-2026-11-16.xml"' in answer.headers[
        "Content-Disposition"]
    assert validation_errors(answer.body) == []
    root = etree.fromstring(answer.body)
    blocks = root.findall(".//espi:IntervalBlock", NS)
    assert len(blocks) == 3  # Monday, Tuesday and today so far
    counts = [len(block.findall("espi:IntervalReading", NS)) for block in blocks]
    assert counts == [48, 47, 28]  # Tuesday's missing half hour is absent, not zero
    starts = {int(text) for text in root.xpath(".//espi:timePeriod/espi:start/text()",
                                               namespaces=NS)}
    day, slot = MISSING_HALF_HOUR
    missing = datetime.combine(day, datetime.min.time(), TZ) + timedelta(minutes=30 * slot)
    assert int(missing.timestamp()) not in starts
    assert root.findtext(".//espi:LocalTimeParameters/espi:tzOffset", namespaces=NS) == "28800"
    assert "0" not in root.xpath(".//espi:IntervalReading/espi:value/text()", namespaces=NS)


def test_green_button_takes_the_named_periods_too(client: Client) -> None:
    answer = client.get(f"{PAGE}?period=prev-month&format=greenbutton")
    assert answer.status == 200 and validation_errors(answer.body) == []
    root = etree.fromstring(answer.body)
    assert len(root.findall(".//espi:IntervalBlock", NS)) == 31  # October 2026
    page = client.get(f"{PAGE}?period=day&date=2026-11-10").text
    assert f'href="{PAGE}?period=day&amp;date=2026-11-10&amp;format=greenbutton"' in page
    assert f'href="{API}?period=day&amp;date=2026-11-10"' in page


def test_the_csv_has_each_rows_cost_and_co2_adding_up_to_the_pages_figures(
        client: Client) -> None:
    query = "period=week&date=2026-11-12"
    rows = list(csv.DictReader(io.StringIO(client.get(f"{PAGE}?{query}&format=csv").text)))
    document = client.get(f"{API}?{query}").json()
    tariff = document["tariff_sgd_per_kwh"]
    factor = document["emission_factor_kg_co2_per_kwh"]
    assert len(rows) == 7
    for row in rows:
        energy_kwh = float(row["energy_kwh"])
        assert float(row["estimated_cost_sgd"]) == pytest.approx(energy_kwh * tariff, abs=1e-4)
        assert float(row["estimated_co2_kg"]) == pytest.approx(energy_kwh * factor, abs=1e-4)
    assert sum(float(row["estimated_cost_sgd"]) for row in rows) == pytest.approx(
        document["estimated_cost_sgd"], abs=0.005)
    assert sum(float(row["estimated_co2_kg"]) for row in rows) == pytest.approx(
        document["estimated_co2_kg"], abs=0.001)
    json_rows = document["rows"]
    assert [r["estimated_cost_sgd"] for r in json_rows] == [  # type: ignore[union-attr]
        float(row["estimated_cost_sgd"]) for row in rows]


def test_a_missing_day_has_no_cost_or_co2_in_the_csv(client: Client) -> None:
    rows = list(csv.DictReader(io.StringIO(client.get(
        f"{PAGE}?period=week&date={MISSING_DAY.isoformat()}&format=csv").text)))
    missing = next(row for row in rows if row["date"] == MISSING_DAY.isoformat())
    assert missing["estimated_cost_sgd"] == "" and missing["estimated_co2_kg"] == ""


def test_the_only_meter_of_its_region_uses_about_the_same_as_the_average(
        client: Client) -> None:
    page = client.get(f"{PAGE}?period=week&date=2026-11-12").text
    assert "about the same as the average household" in page
    assert "same than" not in page


def local_minutes(server: ServerProcess, before: datetime) -> set[str]:
    """The local times (HH:MM, Singapore) the server's clock read from ``before`` to now."""
    after = server.now()
    return {f"{before.astimezone(TZ):%H:%M}", f"{after.astimezone(TZ):%H:%M}"}


@pytest.mark.parametrize("query", ["period=current-day", f"period=day&date={NOW.date()}"])
def test_todays_page_says_when_it_was_updated_and_refreshes(
        server: ServerProcess, client: Client, query: str) -> None:
    before = server.now()
    page = client.get(f"{PAGE}?{query}").text
    updated = re.search(r'<p class="updated"( data-refresh-s="(\d+)")?>\s*Last updated '
                        r"(\d\d:\d\d)", page)
    assert updated is not None
    assert updated[3] in local_minutes(server, before)  # Singapore time, not UTC
    assert updated[2] is not None and 60 <= int(updated[2]) <= 600
    assert f'<a class="refresh" href="{PAGE}?{query.replace("&", "&amp;")}">Refresh</a>' in page
    assert re.search(r'<script src="/static/refresh\.js\?v=\w+" defer></script>', page)


@pytest.mark.parametrize("query", ["period=current-week", "period=week&date=2026-11-12",
                                   "period=day&date=2026-11-17"])
def test_other_periods_do_not_reload_themselves(client: Client, query: str) -> None:
    page = client.get(f"{PAGE}?{query}").text
    assert "data-refresh-s" not in page and "refresh.js" not in page


def test_a_past_period_has_no_last_updated_line(client: Client) -> None:
    assert "Last updated" not in client.get(f"{PAGE}?period=day&date=2026-11-17").text
    assert "Last updated" in client.get(f"{PAGE}?period=current-week").text  # still open
