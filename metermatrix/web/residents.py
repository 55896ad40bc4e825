"""Residents' pages: register, log in, a meter's profile and its consumption by period.

Routes (see ``resident_routes``): ``/register``, ``/profile`` (log in), ``/logout``,
``/profile/{meterId}``, ``/profile/{meterId}/consumption?period=...[&format=csv]`` and
``/api/v1/meters/{meterId}/consumption?period=...``. Meter ids may be written with dashes
(``999-999-999``). A resident sees only their own meter: any other answers 403.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import tornado.web

from metermatrix.accounts import hash_password, verify_password
from metermatrix.activation import code_matches, normalise_code
from metermatrix.fleet import REGIONS
from metermatrix.periods import custom_period
from metermatrix.queries import daily
from metermatrix.sessions import resident_user
from metermatrix.slots import local_day
from metermatrix.storage import MeterRecord, Storage
from metermatrix.web.base import BaseHandler, local_target
from metermatrix.web.consumption import ConsumptionAPIHandler, ConsumptionHandler
from metermatrix.web.residentpage import (
    ResidentPage,
    ResidentState,
    parse_meter_text,
)

FIN_PATTERN = re.compile(r"[A-Z][0-9]{7}[A-Z]")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_NAME = 100
REGISTRATION_FIELDS = ("name", "fin_no", "meter_id", "activation_code", "region", "password",
                       "password_confirm")
#: The one answer to any wrong meter, FIN or activation code: nothing about which was wrong.
MISMATCH = ("These details do not match the utility's records. Check the meter ID, the FIN "
            "and the activation code printed on your bill.")


@dataclass(frozen=True)
class Registration:
    """A valid registration form."""

    meter_id: int
    name: str
    fin_no: str
    region: str
    password: str
    activation_code: str


def validate_registration(form: dict[str, str]) -> tuple[Registration | None, dict[str, str]]:
    """The registration, or None and a message per invalid field."""
    errors: dict[str, str] = {}
    name = " ".join(form.get("name", "").split())
    if not name or len(name) > MAX_NAME:
        errors["name"] = f"Enter your name (at most {MAX_NAME} characters)."
    fin_no = form.get("fin_no", "").strip().upper()
    if not FIN_PATTERN.fullmatch(fin_no):
        errors["fin_no"] = "A FIN is one letter, 7 digits and one letter, e.g. A3389127I."
    meter_id = parse_meter_text(form.get("meter_id", ""), typed=True)
    if meter_id is None:
        errors["meter_id"] = "A meter ID has 9 digits, e.g. 999999999 or 999-999-999."
    code = normalise_code(form.get("activation_code", ""))
    if code is None:
        errors["activation_code"] = ("The activation code on your bill has 10 letters and "
                                     "digits, e.g. 6CTB3-YEC7Q.")
    region = form.get("region", "")
    if region not in REGIONS:
        errors["region"] = "Choose your region."
    password = form.get("password", "")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        errors["password"] = f"Use at least {MIN_PASSWORD} characters."
    elif password != form.get("password_confirm", ""):
        errors["password_confirm"] = "The two passwords are not the same."
    if errors or meter_id is None or code is None:
        return None, errors
    return Registration(meter_id, name, fin_no, region, password, code), errors


def proves_ownership(storage: Storage, activation_key: bytes, meter_id: int, fin_no: str,
                     code: str, fin_required: bool = False) -> bool:
    """True when ``code`` is the meter's activation code and ``fin_no`` the FIN on record.

    A meter whose record has no FIN is proved by its code alone, unless ``fin_required``.
    """
    record = storage.get_meter(meter_id)
    on_record = (record.fin_no or "").upper() if record else ""
    fin_ok = hmac.compare_digest(on_record, fin_no.upper()) if on_record else not fin_required
    code_ok = code_matches(activation_key, meter_id, code)
    return fin_ok and code_ok


def create_account(storage: Storage, registration: Registration, password_hash: str) -> bool:
    """Add the resident and the meter's owner details in one commit; False if taken."""
    with storage.transaction():
        if not storage.add_resident(registration.meter_id, password_hash):
            return False
        storage.save_meter(MeterRecord(registration.meter_id, registration.name,
                                       registration.fin_no, registration.region))
    return True


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run a slow call (a password hash) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


class RegisterHandler(ResidentPage):
    """/register: a new resident proves ownership of their meter and signs up."""

    def get(self) -> None:
        self.render("register.html", form={}, errors={}, regions=REGIONS)

    async def post(self) -> None:
        form = {key: self.get_body_argument(key, "") for key in REGISTRATION_FIELDS}
        registration, errors = validate_registration(form)
        if registration is not None:
            errors = await self.create(registration)
            if not errors:
                await self.login(resident_user(registration.meter_id))
                self.redirect(f"/profile/{registration.meter_id}", status=303)
                return
        if self.get_status() != 429:
            self.set_status(400)
        kept = {key: value for key, value in form.items() if not key.startswith("password")}
        self.render("register.html", form=kept, errors=errors, regions=REGIONS)

    async def create(self, registration: Registration) -> dict[str, str]:
        """Check ownership (a counted attempt), then store the account and owner's details."""
        account = resident_user(registration.meter_id)
        if wait_s := await self.reserve_attempt(account):
            return {"_form": f"Too many failed attempts. Try again in {wait_s} seconds."}
        storage = self.service.storage
        if not proves_ownership(storage, self.activation_key, registration.meter_id,
                                registration.fin_no, registration.activation_code):
            return {"_form": MISMATCH}
        await self.attempt_succeeded(account)
        taken = {"meter_id": "This meter already has an account. Log in instead."}
        if storage.resident_password_hash(registration.meter_id) is not None:
            return taken
        password_hash = await in_thread(hash_password, registration.password)
        created = await self.write_job(
            lambda storage: create_account(storage, registration, password_hash))
        if created and self.service.collector is not None:  # today's region sums follow
            self.service.collector.move_meter(registration.meter_id, registration.region)
        return {} if created else taken


class LoginHandler(ResidentPage):
    """/profile: an existing resident logs in with meter ID and password."""

    def get(self) -> None:
        if self.resident_meter is not None:
            self.redirect(self.next_page(self.resident_meter))
            return
        self.show_form("", "")

    def next_page(self, meter_id: int) -> str:
        """Where to go after logging in: a local ``next`` page, else the profile."""
        return local_target(self.get_argument("next", ""), f"/profile/{meter_id}")

    async def post(self) -> None:
        meter_text = self.get_body_argument("meter_id", "")
        meter_id = parse_meter_text(meter_text, typed=True)
        account = resident_user(meter_id) if meter_id else None
        if wait_s := await self.reserve_attempt(account):
            self.show_form(meter_text, f"Too many failed attempts. Try again in {wait_s} seconds.")
            return
        stored = self.service.storage.resident_password_hash(meter_id) if meter_id else None
        if not await in_thread(verify_password, stored, self.get_body_argument("password", "")):
            self.set_status(401)
            self.show_form(meter_text, "That meter ID and password do not match an account.")
            return
        assert meter_id is not None and account is not None
        await self.attempt_succeeded(account)
        await self.login(account)
        self.redirect(self.next_page(meter_id), status=303)

    def show_form(self, meter_text: str, error: str) -> None:
        """The login form, with the meter ID kept (never the password)."""
        self.render("login.html", meter_text=meter_text, error=error,
                    next_url=self.get_argument("next", ""))


class LogoutHandler(BaseHandler):
    """/logout: end the session (a POST with the XSRF token; there is no GET logout)."""

    async def post(self) -> None:
        await self.logout()
        self.redirect("/", status=303)


@dataclass(frozen=True)
class ProfileSummary:
    """The figures of a resident's landing page [kWh]; NaN where there is no reading."""

    today: date
    today_kwh: float
    yesterday_kwh: float
    month_kwh: float
    month_days_without_readings: int


def profile_summary(storage: Storage, meter_id: int, now: datetime, tz: tzinfo
                    ) -> ProfileSummary:
    """Today so far, yesterday and this month for one meter."""
    today = local_day(now, tz)
    yesterday, month_start = today - timedelta(days=1), today.replace(day=1)
    frame = daily(storage, [meter_id], custom_period(min(yesterday, month_start), today, tz), now)
    by_day: dict[date, float] = dict(zip(frame["day"], frame["energy_kwh"], strict=True))
    month = [kwh for day, kwh in by_day.items() if day >= month_start and not math.isnan(kwh)]
    return ProfileSummary(
        today=today, today_kwh=by_day[today], yesterday_kwh=by_day[yesterday],
        month_kwh=sum(month) if month else math.nan,
        month_days_without_readings=sum(math.isnan(by_day[day]) for day in by_day
                                        if month_start <= day < today),
    )


class ProfileHandler(ResidentPage):
    """/profile/{meterId}: the resident's landing page."""

    @tornado.web.authenticated
    async def get(self, meter_text: str) -> None:
        meter_id = self.own_meter(meter_text)
        meter = self.service.storage.get_meter(meter_id) or MeterRecord(meter_id)
        summary = await self.service.readers.run(
            profile_summary, meter_id, self.service.clock(), self.service.settings.tz)
        self.render("profile.html", meter=meter, summary=summary,
                    tariff=self.service.settings.tariff_sgd_per_kwh)


def resident_routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The residents' routes, sharing one throttle and one region-average cache."""
    state = {"state": ResidentState()}
    meter = r"([0-9][0-9-]{0,14})"
    return [
        (r"/register", RegisterHandler, state),
        (r"/profile", LoginHandler, state),
        (r"/logout", LogoutHandler, {}),
        (rf"/profile/{meter}", ProfileHandler, state),
        (rf"/profile/{meter}/consumption", ConsumptionHandler, state),
        (rf"/api/v1/meters/{meter}/consumption", ConsumptionAPIHandler, state),
    ]
