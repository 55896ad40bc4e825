"""The residents' figures beside the totals, against a real server on the injected clock:
fair neighbour comparisons, what each total covers, the late-reading banner, CO2, the
projected bill. Histories are written into the database before the server starts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from metermatrix.accounts import hash_password
from metermatrix.periods import last_due_boundary
from metermatrix.routines import open_day_for
from metermatrix.settings import Settings
from metermatrix.storage import MeterRecord, Reading, open_storage
from tests.conftest import ServerProcess, fixture_clock
from tests.test_residents import Client

TIMEZONE = "Asia/Singapore"
TZ = ZoneInfo(TIMEZONE)
#: Local time of the server's clock unless $METERMATRIX_TEST_CLOCK says otherwise.
CLOCK_AT = "14:10"
PASSWORD = "a long enough password"
#: Gappy (one whole day last month), partial (a few half hours), steady (every half hour).
GAPPY, PARTIAL, STEADY, OTHER = 111_111_111, 222_222_222, 333_333_333, 444_444_444
STEADY_WH = 200  # every half hour of the steady meters
GAPPY_WH = 100


def last_month(today: date) -> list[date]:
    """Every day of the month before ``today``'s."""
    end = today.replace(day=1)
    first = (end - timedelta(days=1)).replace(day=1)
    return [first + timedelta(days=n) for n in range((end - first).days)]


def history_days(now: datetime) -> list[date]:
    """Last month and this month up to yesterday (local days of ``now``)."""
    today = now.astimezone(TZ).date()
    this_month = [today.replace(day=n) for n in range(1, today.day)]
    return last_month(today) + this_month


def prefill(data_dir: Path, now: datetime) -> None:
    """Four East meters with accounts: STEADY and OTHER report every half hour of the
    history; GAPPY reports only the first day of last month; PARTIAL 10 half hours of it."""
    storage = open_storage(data_dir)
    days = history_days(now)
    readings = [Reading(meter, day, slot, STEADY_WH)
                for meter in (STEADY, OTHER) for day in days for slot in range(48)]
    readings += [Reading(GAPPY, days[0], slot, GAPPY_WH) for slot in range(48)]
    readings += [Reading(PARTIAL, days[0], slot, GAPPY_WH) for slot in range(10)]
    password_hash = hash_password(PASSWORD)
    with storage.transaction():
        for meter in (GAPPY, PARTIAL, STEADY, OTHER):
            storage.save_meter(MeterRecord(meter, "Resident", None, "East"))
            storage.add_resident(meter, password_hash)
        storage.add_readings(readings)
    open_day = open_day_for(now, Settings(timezone=TIMEZONE))
    for day in days:
        if day < open_day:
            storage.close_day_from_readings(day)
    storage.close()


@pytest.fixture(scope="module")
def figures_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A Singapore server on the injected clock over the prefilled history."""
    data_dir = tmp_path_factory.mktemp("figures") / "data"
    server = ServerProcess(data_dir, timezone=TIMEZONE, clock_at=fixture_clock(CLOCK_AT))
    prefill(data_dir, server.now())
    server.start()
    yield server
    server.stop()


def client_of(server: ServerProcess, meter: int) -> Client:
    client = Client(server)
    assert client.login(str(meter), PASSWORD).status == 303
    return client


def api(client: Client, meter: int, period: str) -> dict[str, object]:
    answer = client.get(f"/api/v1/meters/{meter}/consumption?period={period}")
    assert answer.status == 200, answer.text
    return answer.json()


def card(page: str, name: str) -> str:
    """The text of the card with class ``name`` on a page, tags removed."""
    found = re.search(rf'<div class="card {name}">(.*?)</div>', page, re.S)
    assert found, f"no {name} card"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


# -- item 3: the neighbour comparison with incomplete own data ---------------------------
def test_a_meter_with_one_day_of_readings_is_compared_on_that_day_only(
        figures_server: ServerProcess) -> None:
    client = client_of(figures_server, GAPPY)
    comparison = api(client, GAPPY, "prev-month")["region_average"]["comparison"]  # type: ignore[index]
    days = len(last_month(figures_server.now().astimezone(TZ).date()))
    assert comparison["basis"] == "matched"
    assert comparison["intervals_compared"] == 1 and comparison["intervals_due"] == days
    assert comparison["own_kwh"] == pytest.approx(48 * GAPPY_WH / 1000)
    # the region's average meter on that day: its energy over the half hours reported, x 48
    energy_wh = 2 * 48 * STEADY_WH + 48 * GAPPY_WH + 10 * GAPPY_WH
    region_kwh = energy_wh / (3 * 48 + 10) * 48 / 1000
    assert comparison["region_kwh"] == pytest.approx(region_kwh, abs=0.001)
    assert comparison["change_percent"] == pytest.approx(
        (4.8 - region_kwh) / region_kwh * 100, abs=0.1)
    page = client.get(f"/profile/{GAPPY}/consumption?period=prev-month").text
    note = card(page, "neighbours")
    assert f"compares the 1 of {days} days with all your readings" in note
    less = round((region_kwh - 4.8) / region_kwh * 100)
    assert f"you used {less}% less than the average household" in note


def test_a_meter_without_a_whole_day_is_told_why_there_is_no_comparison(
        figures_server: ServerProcess) -> None:
    client = client_of(figures_server, PARTIAL)
    comparison = api(client, PARTIAL, "prev-month")["region_average"]["comparison"]  # type: ignore[index]
    assert comparison["basis"] == "none" and comparison["change_percent"] is None
    days = len(last_month(figures_server.now().astimezone(TZ).date()))
    assert "not possible yet" in comparison["reason"]
    assert f"10 of the {48 * days} half hours" in comparison["reason"]
    note = card(client.get(f"/profile/{PARTIAL}/consumption?period=prev-month").text,
                "neighbours")
    assert "A comparison is not possible yet" in note and "less than" not in note


def test_a_complete_meter_is_compared_over_the_whole_period(
        figures_server: ServerProcess) -> None:
    client = client_of(figures_server, STEADY)
    document = api(client, STEADY, "prev-month")
    comparison = document["region_average"]["comparison"]  # type: ignore[index]
    assert comparison["basis"] == "period" and comparison["reason"] == ""
    assert comparison["own_kwh"] == document["total_kwh"]
    assert comparison["region_kwh"] == document["region_average"]["total_kwh"]  # type: ignore[index]


# -- item 4: what each number is -----------------------------------------------------------
def test_json_says_what_stretch_each_total_covers(figures_server: ServerProcess) -> None:
    client = client_of(figures_server, STEADY)
    now = figures_server.now()
    boundary = last_due_boundary(now, TZ)
    today = datetime.combine(now.astimezone(TZ).date(), datetime.min.time(), TZ)
    document = api(client, STEADY, "current-day")
    covers = document["total_covers"]
    previous = document["previous"]
    assert covers == {"start": today.isoformat(), "end": max(boundary, today).isoformat()}
    yesterday = today - timedelta(days=1)
    assert previous["start"] == yesterday.isoformat()  # type: ignore[index]
    assert previous["total_covers"] == {  # type: ignore[index]
        "start": yesterday.isoformat(),
        "end": (yesterday + (max(boundary, today) - today)).isoformat()}
    assert "same offset" in previous["total_is"]  # type: ignore[index]
    half_hours = round((max(boundary, today) - today) / timedelta(minutes=30))
    expected = STEADY_WH * half_hours / 1000 if half_hours else None
    if now.astimezone(TZ).day > 1 or half_hours == 0:  # yesterday is in the history
        assert previous["total_kwh"] == expected  # type: ignore[index]
    closed = api(client, STEADY, "prev-month")["previous"]
    assert closed["total_is"] == "the whole previous period"  # type: ignore[index]
    assert closed["total_covers"]["end"] == closed["end"]  # type: ignore[index]


def test_the_two_yesterdays_carry_different_labels(figures_server: ServerProcess) -> None:
    client = client_of(figures_server, STEADY)
    profile = client.get(f"/profile/{STEADY}").text
    assert "Yesterday, the whole day" in profile
    page = client.get(f"/profile/{STEADY}/consumption?period=current-day").text
    until = max(last_due_boundary(figures_server.now(), TZ),
                datetime.combine(figures_server.now().astimezone(TZ).date(),
                                 datetime.min.time(), TZ))
    assert f"Yesterday up to {until:%H:%M}" in card(page, "previous")


# -- item 5: the late-reading banner ---------------------------------------------------------
def notice(page: str) -> str:
    found = re.search(r'<p class="notice">(.*?)</p>', page, re.S)
    assert found, "no missing-readings banner"
    return " ".join(found.group(1).split())


def test_the_banner_does_not_promise_late_readings_for_days_past_the_window(
        figures_server: ServerProcess) -> None:
    client = client_of(figures_server, GAPPY)
    banner = notice(client.get(f"/profile/{GAPPY}/consumption?period=prev-month").text)
    now = figures_server.now()
    days = last_month(now.astimezone(TZ).date())[1:]  # GAPPY reported only the first
    ends = [datetime.combine(day + timedelta(days=1), datetime.min.time(), TZ)
            + timedelta(minutes=1) for day in days]
    still = sum(end >= now - timedelta(days=7) for end in ends)
    assert still < len(days)  # last month always has days past the 7-day window
    assert "for up to 7 days" not in banner
    if still:
        assert f"{still} of them are less than 7 days old and can still arrive" in banner
    else:
        assert "will not arrive any more" in banner


# -- item 8: CO2 beside the cost ------------------------------------------------------------
def test_each_period_states_its_co2_at_the_default_ema_factor(
        figures_server: ServerProcess) -> None:
    client = client_of(figures_server, STEADY)
    document = api(client, STEADY, "prev-month")
    assert document["emission_factor_kg_co2_per_kwh"] == 0.408
    assert document["estimated_co2_kg"] == pytest.approx(
        document["total_kwh"] * 0.408, abs=0.001)  # type: ignore[operator]
    text = card(client.get(f"/profile/{STEADY}/consumption?period=prev-month").text, "co2")
    assert f"{document['total_kwh'] * 0.408:.2f} kg" in text  # type: ignore[operator]
    assert "0.408 kg CO 2 /kWh" in text and "Energy Market Authority" in text
    assert "2020" in text and "T2.4" in text


def test_the_emission_factor_setting_changes_the_estimate(
        make_server: type[ServerProcess], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, timezone=TIMEZONE, clock_at=fixture_clock(CLOCK_AT))
    prefill(data_dir, server.now())
    server = make_server(data_dir, timezone=TIMEZONE, clock_at=fixture_clock(CLOCK_AT),
                         extra=["--grid-emission-factor-kg-per-kwh", "0.5"])
    client = client_of(server, STEADY)
    document = api(client, STEADY, "prev-month")
    assert document["estimated_co2_kg"] == pytest.approx(
        document["total_kwh"] * 0.5, abs=0.001)  # type: ignore[operator]
    text = card(client.get(f"/profile/{STEADY}/consumption?period=prev-month").text, "co2")
    assert "0.500 kg CO 2 /kWh" in text and "Energy Market Authority" not in text


# -- item 9: this month's projected bill ------------------------------------------------------
def test_this_months_projection_fills_the_rest_of_the_month_with_the_usual_day(
        figures_server: ServerProcess) -> None:
    client = client_of(figures_server, STEADY)
    today = figures_server.now().astimezone(TZ).date()
    month_days = len(last_month(today.replace(day=28) + timedelta(days=7)))
    usual_day_kwh = 48 * STEADY_WH / 1000
    projection = api(client, STEADY, "current-month")["projection"]
    assert projection["usual_day_kwh"] == pytest.approx(usual_day_kwh)  # type: ignore[index]
    assert projection["so_far_kwh"] == pytest.approx(  # type: ignore[index]
        (today.day - 1) * usual_day_kwh)
    assert projection["expected_kwh"] == pytest.approx(  # type: ignore[index]
        month_days * usual_day_kwh)
    assert projection["expected_cost_sgd"] == round(  # type: ignore[index]
        month_days * usual_day_kwh * 0.30, 2)
    text = card(client.get(f"/profile/{STEADY}/consumption?period=current-month").text,
                "projection")
    assert f"{month_days * usual_day_kwh:,.2f} kWh" in text
    assert "usual half hour" in text and "last 28 days" in text
    assert "projection" not in api(client, STEADY, "prev-month")
