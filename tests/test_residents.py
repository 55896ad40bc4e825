"""Residents' pages and API against a real server: register, log in, profile, consumption."""

from __future__ import annotations

import csv
import http.cookiejar
import io
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from tornado.escape import xhtml_escape

from metermatrix.accounts import DEMO_PASSWORD
from metermatrix.activation import activation_code, load_activation_key
from metermatrix.averages import DEFINITION
from metermatrix.periods import RESIDENT_PERIODS, last_due_boundary
from metermatrix.slots import SLOT_LABELS
from metermatrix.storage import open_storage
from metermatrix.throttle import ACCOUNT_RULE, LoginThrottle, ThrottleRule
from tests.conftest import ServerProcess, fixture_clock

#: The local time the servers' clocks start at (``$METERMATRIX_TEST_CLOCK`` wins).
CLOCK = "14:10"

PASSWORD = "correct horse battery"
FIN = "A3389127I"


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> dict[str, object]:
        return orjson.loads(self.body)  # type: ignore[no-any-return]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """A resident's HTTP client: keeps cookies, does not follow redirects."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Response:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.server.url + path, data=data, method=method)
        try:
            with self.opener.open(request, timeout=30) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], xsrf: bool = True) -> Response:
        if xsrf:
            if self.cookie("_xsrf") is None:
                self.get("/profile")
            form = {**form, "_xsrf": self.cookie("_xsrf") or ""}
        return self.request("POST", path, form)

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def login(self, meter: str, password: str = PASSWORD) -> Response:
        return self.post("/profile", {"meter_id": meter, "password": password})


def code_of(server: ServerProcess, meter: str) -> str:
    """The meter's activation code, as the utility prints it on the bill."""
    return activation_code(load_activation_key(server.data_dir),
                           int(meter.replace("-", "")))


def registration(server: ServerProcess, meter: str, **changes: str) -> dict[str, str]:
    form = {"name": "Wei Ling Tan", "fin_no": FIN, "meter_id": meter, "region": "East",
            "password": PASSWORD, "password_confirm": PASSWORD}
    if meter.replace("-", "").isdigit():
        form["activation_code"] = code_of(server, meter)
    return {**form, **changes}


def register(server: ServerProcess, meter: str, **changes: str) -> Client:
    client = Client(server)
    answer = client.post("/register", registration(server, meter, **changes))
    assert answer.status == 303, answer.text
    return client


def recent_half_hours(count: int, tz: ZoneInfo, now: datetime
                      ) -> list[tuple[date, int, datetime]]:
    """(local day, slot, send time) of the ``count`` latest half hours due at ``now``."""
    boundary = last_due_boundary(now, tz)
    found = []
    for back in range(count, 0, -1):
        start = boundary - timedelta(minutes=30 * back)
        midnight = start.replace(hour=0, minute=0)
        found.append((start.date(), int((start - midnight) / timedelta(minutes=30)),
                      start + timedelta(minutes=31)))
    return found


def post_recent(server: ServerProcess, meter_id: int, count: int, skip: int | None = None,
                kwh: float = 0.25) -> list[tuple[date, int, float | None]]:
    """Send the latest ``count`` due readings (all but number ``skip``): (day, slot, kWh)."""
    sent = []
    for index, (day, slot, send_at) in enumerate(
            recent_half_hours(count, ZoneInfo(server.timezone), server.now())):
        if index == skip:
            sent.append((day, slot, None))
            continue
        value = round(kwh + 0.01 * index, 3)
        status, _ = server.post_packet(meter_id, send_at, value)
        assert status == 201
        sent.append((day, slot, value))
    return sent


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One Singapore-time server for the tests that do not need a fresh one."""
    server = ServerProcess(tmp_path_factory.mktemp("residents") / "data",
                           timezone="Asia/Singapore", clock_at=fixture_clock(CLOCK))
    server.start()
    yield server
    server.stop()


# -- register -----------------------------------------------------------------------
def test_register_form_has_every_field_and_an_xsrf_token(shared: ServerProcess) -> None:
    page = Client(shared).get("/register")
    assert page.status == 200
    for name in ("name", "fin_no", "meter_id", "activation_code", "password",
                 "password_confirm", "_xsrf"):
        assert f'name="{name}"' in page.text
    for region in ("Central", "East", "North", "North-East", "West"):
        assert f'<option value="{region}"' in page.text


def test_registering_with_a_dashed_meter_id_logs_in_and_lands_on_the_profile(
        shared: ServerProcess) -> None:
    client = Client(shared)
    answer = client.post("/register", registration(shared, "101-000-001"))
    assert answer.status == 303 and answer.headers["Location"] == "/profile/101000001"
    profile = client.get("/profile/101000001")
    assert profile.status == 200
    assert "Wei Ling Tan" in profile.text and "*****127I" in profile.text
    assert "East" in profile.text and "101-000-001" in profile.text


def test_invalid_fields_come_back_with_messages_and_the_values_kept(
        shared: ServerProcess) -> None:
    form = registration(shared, "101000002", fin_no="12345", region="Atlantis",
                        password_confirm="something else")
    answer = Client(shared).post("/register", form)
    assert answer.status == 400
    assert "A FIN is one letter, 7 digits and one letter" in answer.text
    assert "Choose your region" in answer.text
    assert "The two passwords are not the same" in answer.text
    assert 'value="Wei Ling Tan"' in answer.text and 'value="101000002"' in answer.text
    assert 'value="12345"' in answer.text and PASSWORD not in answer.text
    assert Client(shared).login("101000002").status == 401  # nothing was stored


@pytest.mark.parametrize("field, value, message", [
    ("name", "   ", "Enter your name"),
    ("meter_id", "12-34", "A meter ID has 9 digits"),
    ("meter_id", "1234567890", "A meter ID has 9 digits"),
    ("fin_no", "A33891271", "A FIN is one letter"),
    ("password", "short", "Use at least 8 characters"),
])
def test_each_invalid_field_is_refused(shared: ServerProcess, field: str, value: str,
                                       message: str) -> None:
    form = registration(shared, "101000003", **{field: value})
    if field == "meter_id":
        form["activation_code"] = code_of(shared, "101000003")
    if field == "password":
        form["password_confirm"] = value
    answer = Client(shared).post("/register", form)
    assert answer.status == 400 and message in answer.text


def test_one_account_per_meter(shared: ServerProcess) -> None:
    register(shared, "101000004")
    again = Client(shared).post("/register",
                                registration(shared, "101-000-004", name="Someone Else"))
    assert again.status == 400 and "This meter already has an account" in again.text
    assert Client(shared).login("101000004").status == 303


def test_registering_a_meter_known_from_its_packets_saves_its_owner(
        shared: ServerProcess) -> None:
    post_recent(shared, 101_000_005, 1)
    register(shared, "101000005", name="Siti Nurhaliza", region="North-East")
    with sqlite3.connect(shared.data_dir / "metermatrix.sqlite3") as db:
        row = db.execute("SELECT name, fin_no, region FROM meters WHERE meter_id = 101000005")
        assert row.fetchone() == ("Siti Nurhaliza", FIN, "North-East")
        (count,) = db.execute("SELECT COUNT(*) FROM residents WHERE meter_id = 101000005")
        assert count == (1,)


def test_a_form_without_the_xsrf_token_is_refused(shared: ServerProcess) -> None:
    client = Client(shared)
    assert client.post("/register", registration(shared, "101000006"), xsrf=False).status == 403
    assert client.post("/profile", {"meter_id": "101000006", "password": PASSWORD},
                       xsrf=False).status == 403


# -- log in and out -------------------------------------------------------------------
def test_login_accepts_dashes_and_sets_a_safe_session_cookie(shared: ServerProcess) -> None:
    register(shared, "101000007")
    client = Client(shared)
    answer = client.login("101-000-007")
    assert answer.status == 303 and answer.headers["Location"] == "/profile/101000007"
    cookie = next(v for k, v in answer.headers.items()
                  if k.lower() == "set-cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_and_unknown_meter_get_the_same_answer(
        make_server: type[ServerProcess]) -> None:
    server = make_server(clock_at=fixture_clock(CLOCK))
    register(server, "101000008")
    wrong = Client(server).login("101000008", "not the password")
    unknown = Client(server).login("101000009")
    assert wrong.status == unknown.status == 401
    message = "That meter ID and password do not match an account."
    assert message in wrong.text and message in unknown.text
    assert 'value="101000008"' in wrong.text


def test_repeated_failures_at_one_account_are_slowed_down(
        make_server: type[ServerProcess]) -> None:
    server = make_server(clock_at=fixture_clock(CLOCK))
    register(server, "101000010")
    client = Client(server)
    for _ in range(ACCOUNT_RULE.free):
        assert client.login("101000010", "guess").status == 401
    refused = client.login("101000010")  # even the right password must wait now
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed attempts" in refused.text


def test_throttle_rule_waits_longer_after_each_attempt_and_forgets_a_quiet_key() -> None:
    rule = ThrottleRule(free=3, base_s=2, max_s=10, window_s=60)
    assert [rule.wait_s(attempts, 1000, 1000) for attempts in range(3)] == [0, 0, 0]
    assert rule.wait_s(3, 1000, 1000) == 2 and rule.wait_s(3, 1000, 1001.5) == 0.5
    assert rule.wait_s(4, 1000, 1000) == 4
    assert rule.wait_s(9, 1000, 1000) == 10  # capped
    assert rule.wait_s(9, 1000, 1061) == 0  # a quiet window starts afresh


def test_throttle_counts_before_the_check_and_a_success_clears_only_its_account(
        tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    rule = ThrottleRule(free=2, base_s=30, max_s=60, window_s=600)
    throttle = LoginThrottle(account=rule, address=ThrottleRule(3, 30, 60, 600))
    assert throttle.reserve(storage, "resident:1", "10.0.0.1", 1000) == 0
    assert throttle.reserve(storage, "resident:1", "10.0.0.1", 1000) == 0
    assert throttle.reserve(storage, "resident:1", "10.0.0.1", 1001) == 29  # nothing counted
    assert throttle.reserve(storage, "resident:2", "10.0.0.1", 1001) == 0
    throttle.succeeded(storage, "resident:2", "10.0.0.1")
    assert storage.login_attempts("resident:2") is None
    assert storage.login_attempts("address:10.0.0.1") == (2, 1001)
    assert throttle.reserve(storage, "resident:1", "10.0.0.1", 1020) == 10  # still waiting
    assert throttle.reserve(storage, None, "10.0.0.2", 1020) == 0  # another address
    assert throttle.reserve(storage, "resident:1", "10.0.0.1", 1031) == 0  # waited
    storage.close()


def test_login_returns_to_the_page_asked_for(shared: ServerProcess) -> None:
    register(shared, "101000011")
    client = Client(shared)
    asked = "/profile/101000011/consumption?period=current-week"
    redirect = client.get(asked)
    assert redirect.status == 302 and redirect.headers["Location"].startswith("/profile?next=")
    answer = client.post("/profile?next=" + urllib.parse.quote(asked),
                         {"meter_id": "101000011", "password": PASSWORD})
    assert answer.headers["Location"] == asked
    evil = client.post("/profile?next=//evil.example/", {"meter_id": "101000011",
                                                          "password": PASSWORD})
    assert evil.headers["Location"] == "/profile/101000011"


def test_logout_ends_the_session(shared: ServerProcess) -> None:
    client = register(shared, "101000012")
    assert client.get("/profile/101000012").status == 200
    assert client.post("/logout", {}).status == 303
    assert client.get("/profile/101000012").status == 302


def test_passwords_never_reach_the_log(make_server: type[ServerProcess]) -> None:
    server = make_server(clock_at=fixture_clock(CLOCK))
    secret = "a-password-nobody-logs-42"
    register(server, "101000013", password=secret, password_confirm=secret)
    Client(server).login("101000013", secret + "-wrong")
    Client(server).login("101000013", secret)
    server.stop()
    assert secret not in server.log_path.read_text()


# -- access -----------------------------------------------------------------------------
def test_a_resident_cannot_read_another_meter_by_any_route(shared: ServerProcess) -> None:
    owner = register(shared, "101000014")
    register(shared, "101000015")
    for meter in ("101000015", "101-000-015"):
        for path in (f"/profile/{meter}", f"/profile/{meter}/consumption",
                     f"/profile/{meter}/consumption?period=prev-month&format=csv",
                     f"/api/v1/meters/{meter}/consumption?period=current-day"):
            answer = owner.get(path)
            assert answer.status == 403, path
            assert "101000015" not in answer.text.replace(path, "")


def test_without_login_pages_send_to_the_login_and_the_api_answers_401(
        shared: ServerProcess) -> None:
    client = Client(shared)
    for path in ("/profile/101000014", "/profile/101-000-014/consumption?period=prev-hr"):
        answer = client.get(path)
        assert answer.status == 302 and answer.headers["Location"].startswith("/profile?next=")
    api = client.get("/api/v1/meters/101000014/consumption")
    assert api.status == 401 and "error" in api.json()


def test_a_malformed_meter_id_is_not_found(shared: ServerProcess) -> None:
    client = register(shared, "101000016")
    assert client.get("/profile/1234567890123").status == 404
    assert client.get("/api/v1/meters/0/consumption").status == 404


def test_no_route_shows_the_fin_unmasked(shared: ServerProcess) -> None:
    client = register(shared, "101000017", fin_no="G1234567X")
    post_recent(shared, 101_000_017, 3)
    pages = ["/profile/101000017", "/profile/101-000-017/consumption"]
    pages += [f"/profile/101000017/consumption?period={name}" for name in RESIDENT_PERIODS]
    pages += [f"/profile/101000017/consumption?period={name}&format=csv"
              for name in RESIDENT_PERIODS]
    pages += [f"/api/v1/meters/101000017/consumption?period={name}"
              for name in RESIDENT_PERIODS]
    for path in pages:
        answer = client.get(path)
        assert answer.status == 200, path
        assert "G1234567" not in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
    assert "*****567X" in client.get("/profile/101000017").text


# -- profile and consumption ------------------------------------------------------------
def test_profile_shows_today_so_far_and_links_every_period(shared: ServerProcess) -> None:
    client = register(shared, "101000018")
    sent = post_recent(shared, 101_000_018, 2, kwh=0.5)
    today = shared.now().astimezone(ZoneInfo(shared.timezone)).date()
    today_kwh = sum(kwh for day, _, kwh in sent if day == today and kwh)
    page = client.get("/profile/101-000-018").text
    if today_kwh:
        assert f"{today_kwh:.2f} kWh" in page
    for name in RESIDENT_PERIODS:
        assert f"/profile/101000018/consumption?period={name}" in page


def test_every_period_has_a_graph_numbers_and_a_cost(shared: ServerProcess) -> None:
    client = register(shared, "101000019")
    sent = post_recent(shared, 101_000_019, 4)
    today = shared.now().astimezone(ZoneInfo(shared.timezone)).date()
    empty = {"prev-month"} | (set() if any(day == today for day, _, _ in sent)
                              else {"current-day"})  # the first half hour of a day
    for name in RESIDENT_PERIODS:
        page = client.get(f"/profile/101000019/consumption?period={name}")
        assert page.status == 200, name
        assert "<svg" in page.text and "viewBox" in page.text and "<table" in page.text
        assert 'aria-current="page">' in page.text
        total = re.search(r'data-total-kwh="([\d.]+|nan)"', page.text)[1]  # type: ignore[index]
        if name in empty:  # before the meter's first reading: no number, no zero
            assert total == "nan" and "0.00 kWh" not in page.text
        else:
            assert f"S${float(total) * 0.30:.2f}" in page.text and float(total) > 0
        if name in ("current-week", "current-month"):  # open: compared like for like
            assert "up to the same time" in page.text
        assert xhtml_escape(DEFINITION) in page.text  # the one average-per-meter definition, stated


def test_prev_hr_shows_the_two_half_hours_just_sent(shared: ServerProcess) -> None:
    client = register(shared, "101000020")
    sent = post_recent(shared, 101_000_020, 2, kwh=0.4)
    document = client.get("/api/v1/meters/101000020/consumption?period=prev-hr").json()
    rows = document["rows"]
    assert [(row["slot"], row["energy_kwh"]) for row in rows] == [  # type: ignore[index,union-attr]
        (SLOT_LABELS[slot], kwh) for _, slot, kwh in sent]
    assert document["total_kwh"] == pytest.approx(0.81)
    assert document["estimated_cost_sgd"] == pytest.approx(0.24)


def test_the_default_period_is_today(shared: ServerProcess) -> None:
    client = register(shared, "101000021")
    page = client.get("/profile/101000021/consumption").text
    assert "<h1>Today <small>" in page


def test_a_missing_half_hour_is_marked_and_left_empty(shared: ServerProcess) -> None:
    client = register(shared, "101000022")
    sent = post_recent(shared, 101_000_022, 2, skip=0)
    page = client.get("/profile/101000022/consumption?period=prev-hr").text
    assert "No reading" in page and "1 half hour without a reading" in page
    rows = list(csv.DictReader(io.StringIO(
        client.get("/profile/101000022/consumption?period=prev-hr&format=csv").text)))
    assert [row["energy_kwh"] for row in rows] == ["", f"{sent[1][2]}"]
    assert [row["status"] for row in rows] == ["missing", "ok"]
    api = client.get("/api/v1/meters/101000022/consumption?period=prev-hr").json()
    assert api["rows"][0]["energy_kwh"] is None  # type: ignore[index]
    assert api["intervals_missing"] == 1


def test_csv_download_has_a_header_and_a_row_per_day(shared: ServerProcess) -> None:
    client = register(shared, "101000023")
    answer = client.get("/profile/101-000-023/consumption?period=prev-month&format=csv")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    last_month = (shared.now().astimezone(ZoneInfo(shared.timezone)).date().replace(day=1)
                  - timedelta(days=1))
    assert len(rows) == last_month.day
    assert rows[0]["meter_id"] == "101000023" and rows[-1]["date"] == last_month.isoformat()
    assert {"energy_kwh", "readings", "status", "previous_kwh", "region_average_kwh"} <= set(
        rows[0])


def test_an_unknown_period_lists_the_valid_ones(shared: ServerProcess) -> None:
    client = register(shared, "101000024")
    page = client.get("/profile/101000024/consumption?period=last-decade")
    assert page.status == 400
    for name in RESIDENT_PERIODS:
        assert f"?period={name}" in page.text
    assert client.get("/profile/101000024/consumption?period=prev-hr&format=xls").status == 400
    api = client.get("/api/v1/meters/101000024/consumption?period=last-decade")
    assert api.status == 400 and api.json()["valid_periods"] == list(RESIDENT_PERIODS)


@pytest.mark.parametrize("timezone, offset", [("UTC", "+00:00"), ("Asia/Singapore", "+08:00")])
def test_periods_follow_the_utilitys_time_zone(make_server: type[ServerProcess], tmp_path: Path,
                                               timezone: str, offset: str) -> None:
    server = make_server(tmp_path / timezone.replace("/", "-"), timezone=timezone,
                         clock_at=fixture_clock(CLOCK))
    client = register(server, "101000025")
    sent = post_recent(server, 101_000_025, 1)
    today = server.now().astimezone(ZoneInfo(timezone)).date()
    document = client.get("/api/v1/meters/101000025/consumption?period=current-day").json()
    assert document["period"]["start"] == f"{today.isoformat()}T00:00:00{offset}"  # type: ignore[index]
    rows = document["rows"]
    assert len(rows) == 48 and rows[0]["start"].endswith(offset)  # type: ignore[index,arg-type]
    day, slot, kwh = sent[0]
    if day == today:
        assert rows[slot]["energy_kwh"] == kwh  # type: ignore[index]
    week = client.get("/api/v1/meters/101000025/consumption?period=current-week").json()
    monday = today - timedelta(days=today.weekday())
    assert week["period"]["start"] == f"{monday.isoformat()}T00:00:00{offset}"  # type: ignore[index]


def test_the_tariff_setting_prices_the_estimate(make_server: type[ServerProcess]) -> None:
    server = make_server(extra=["--tariff-sgd-per-kwh", "0.5"],
                         clock_at=fixture_clock(CLOCK))
    client = register(server, "101000026")
    post_recent(server, 101_000_026, 2, kwh=1.0)
    document = client.get("/api/v1/meters/101000026/consumption?period=prev-hr").json()
    assert document["tariff_sgd_per_kwh"] == 0.5
    assert document["estimated_cost_sgd"] == pytest.approx(round(2.01 * 0.5, 2))
    assert "at S$0.50/kWh" in client.get("/profile/101000026/consumption?period=prev-hr").text


def test_the_demo_resident_logs_in_and_sees_last_month(make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True, timezone="Asia/Singapore")
    client = Client(server)
    assert client.login("999999999", DEMO_PASSWORD).status == 303
    profile = client.get("/profile/999999999").text
    assert "Aashima" in profile and "*****127I" in profile
    page = client.get("/profile/999999999/consumption?period=prev-month").text
    assert "Day total" in page and "No reading" not in page and "West average" in page
