"""The management home against a real server: today's headline figures from posted packets."""

from __future__ import annotations

import re
import sqlite3
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD
from metermatrix.periods import last_due_boundary
from metermatrix.slots import interval_start, slots_elapsed
from tests.conftest import ServerProcess, fixture_clock
from tests.test_residents import Client

TIMEZONE = "Asia/Singapore"
AASHIMA, CARLOS = 999999999, 555555555


def manager(server: ServerProcess) -> Client:
    client = Client(server)
    client.get("/management/login")
    answer = client.post("/management/login", {"username": DEMO_MANAGER,
                                                "password": DEMO_PASSWORD})
    assert answer.status == 303
    return client


def post_due_slots(server: ServerProcess, meter_id: int, day: date, most: int) -> int:
    """Post ``meter_id``'s packets for the first ``most`` half hours of ``day`` already due;
    returns how many were posted."""
    tz = ZoneInfo(TIMEZONE)
    boundary = last_due_boundary(server.now(), tz)
    posted = 0
    for slot in range(most):
        start = interval_start(day, slot, tz)
        if start + timedelta(minutes=30) > boundary:
            break
        status, _ = server.post_packet(meter_id, start + timedelta(minutes=31), 0.25)
        assert status == 201
        posted += 1
    return posted


def card(page: str, card_id: str) -> str:
    """The figure of a headline card (its <strong>), tags stripped."""
    match = re.search(rf'id="{card_id}".*?<strong>(.*?)</strong>', page, re.S)
    assert match, f"no card {card_id}"
    return re.sub(r"\s+", " ", match.group(1)).strip()


def stored(server: ServerProcess, sql: str, *args: object) -> int:
    """One number read through a second connection to the server's database."""
    with sqlite3.connect(server.data_dir / "metermatrix.sqlite3") as db:
        (value,) = db.execute(sql, args).fetchone()
    return int(value or 0)


@pytest.mark.slow
def test_the_home_shows_todays_readings_silent_meters_and_yesterdays_total(make_server):
    server = make_server(timezone=TIMEZONE, demo=True, clock_at=fixture_clock("14:10"))
    open_day = date.fromisoformat(orjson.loads(server.request("GET", "/api/v1/status")[1])
                                  ["open_day"])
    sent = [post_due_slots(server, AASHIMA, open_day, 48),
            post_due_slots(server, CARLOS, open_day, 3)]
    posted, heard = sum(sent), sum(count > 0 for count in sent)
    meters = stored(server, "SELECT COUNT(*) FROM meters")
    due = meters * slots_elapsed(open_day, server.now(), ZoneInfo(TIMEZONE))
    yesterday = open_day - timedelta(days=1)
    yesterday_wh = stored(server, "SELECT SUM(energy_wh) FROM daily_totals WHERE day = ?",
                          (yesterday - date(1970, 1, 1)).days)  # days since 1970 (packing.py)

    page = manager(server).get("/management").body.decode()
    assert card(page, "readings-today") == f"{posted:,} / {due:,}"
    assert card(page, "silent-today") == f"{meters - heard:,}"
    assert card(page, "yesterday-total") == f"{yesterday_wh / 1000:,.1f} kWh"
    assert f"Yesterday's total ({yesterday.day} {yesterday:%b %Y})" in page
    for description in ("Region-wise consumption for a period", "Chosen meters: half-hourly"):
        assert description in page


@pytest.mark.slow
def test_a_registered_meter_that_never_sent_anything_is_not_due_today(make_server):
    """Item 2's rule on the home: a meter is due from its first day with data on."""
    server = make_server(timezone=TIMEZONE, demo=True, clock_at=fixture_clock("14:10"))
    open_day = date.fromisoformat(orjson.loads(server.request("GET", "/api/v1/status")[1])
                                  ["open_day"])
    with sqlite3.connect(server.data_dir / "metermatrix.sqlite3") as db:
        db.execute("INSERT INTO meters (meter_id, name, region, created_at)"
                   " VALUES (111111111, 'New', 'East', '2026-01-01T00:00:00Z')")
    posted = post_due_slots(server, AASHIMA, open_day, 48)
    number = (open_day - date(1970, 1, 1)).days
    started = stored(server, """SELECT COUNT(*) FROM meters WHERE meter_id IN (
                                  SELECT meter_id FROM daily_totals WHERE day <= ? UNION
                                  SELECT meter_id FROM day_readings WHERE day <= ?)""",
                     number, number)
    assert started == stored(server, "SELECT COUNT(*) FROM meters") - 1
    due = started * slots_elapsed(open_day, server.now(), ZoneInfo(TIMEZONE))

    page = manager(server).get("/management").body.decode()
    assert card(page, "readings-today") == f"{posted:,} / {due:,}"


def test_the_home_is_for_managers_only(server):
    answer = Client(server).get("/management")
    assert answer.status == 302 and answer.headers["Location"].startswith("/management/login")
