"""Shared handler helpers: the service, server-side sessions, the throttle, JSON answers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import tornado.web

from metermatrix.service import MeterService
from metermatrix.sessions import end_session, live_session, needs_touch, touch_session
from metermatrix.sessions import start_session as store_session
from metermatrix.storage import Storage
from metermatrix.throttle import LoginThrottle

T = TypeVar("T")
#: The cookie holding a session's token (signed, HttpOnly, SameSite=Lax).
SESSION_COOKIE = "session"
#: Our own pages: no scripts at all, inline styles only for the matplotlib SVG charts.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; object-src 'none'; base-uri 'self'; "
               "form-action 'self'; frame-ancestors 'self'")

#: Headers of every answer (with a Content-Security-Policy, PAGE_POLICY or the handler's).
SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                  "X-Frame-Options": "SAMEORIGIN"}

#: What an error page says for each status; any other is our failure.
PAGE_ERRORS = {
    400: "That request is not one this page understands.",
    403: "You are not allowed to see this page.",
    404: "There is no such page.",
    405: "That page does not take this kind of request.",
}
SERVER_ERROR = "Something went wrong on our side. Please try again in a moment."
EXPIRED = "Your session expired, please try again."


class SessionExpiredError(tornado.web.HTTPError):
    """A form sent without its XSRF token or with a stale one (cookies cleared): 403."""

    def __init__(self) -> None:
        super().__init__(403, reason="Session expired")


def local_target(target: str, default: str) -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirects).

    A path is one leading ``/`` not followed by another ``/`` or a backslash, and only
    printable ASCII without spaces: browsers drop tabs and newlines, so ``/\\t/host``
    would leave the site, and control characters cannot go into a Location header.
    """
    if not target.startswith("/") or target[1:2] in ("/", "\\") or "\\" in target:
        return default
    if not all("!" <= char <= "~" for char in target):
        return default
    return target


class BaseHandler(tornado.web.RequestHandler):
    """Helpers every page and API handler shares."""

    @property
    def service(self) -> MeterService:
        """The running MeterService."""
        service: MeterService = self.application.settings["service"]
        return service

    @property
    def throttle(self) -> LoginThrottle:
        """The login throttle every login form shares."""
        throttle: LoginThrottle = self.application.settings["throttle"]
        return throttle

    def write_job(self, job: Callable[[Storage], T]) -> asyncio.Future[T]:
        """Run ``job(storage)`` on the database writer (awaitable)."""
        assert self.service.writer is not None
        return self.service.writer.run(job)

    def session_token(self) -> str | None:
        """The token of the session cookie, if it carries a valid signature."""
        value = self.get_signed_cookie(SESSION_COOKIE, max_age_days=2)
        return value.decode() if value else None

    def get_current_user(self) -> str | None:
        """``resident:<meter_id>`` or ``manager:<username>`` of a live server-side session."""
        token = self.session_token()
        if token is None:
            return None
        now = self.service.clock()
        record = live_session(self.service.storage, token, now)
        if record is None:
            return None
        if needs_touch(record, now):
            self.write_job(lambda storage: touch_session(storage, record, now)
                           ).add_done_callback(lambda done: done.exception())
        return record.user

    @property
    def resident_meter(self) -> int | None:
        """The logged-in resident's meter id, if a resident is logged in."""
        user = self.current_user
        if isinstance(user, str) and user.startswith("resident:"):
            return int(user.removeprefix("resident:"))
        return None

    @property
    def manager_name(self) -> str | None:
        """The logged-in manager's username, if a manager is logged in."""
        user = self.current_user
        if isinstance(user, str) and user.startswith("manager:"):
            return user.removeprefix("manager:")
        return None

    async def login(self, user: str) -> None:
        """Start a server-side session and set its signed, HttpOnly, SameSite cookie."""
        old = self.session_token()
        if old is not None:  # a new login never keeps the previous session going
            await self.write_job(lambda storage: end_session(storage, old))
        now = self.service.clock()
        token = await self.write_job(lambda storage: store_session(storage, user, now))
        self.set_signed_cookie(SESSION_COOKIE, token, expires_days=None, httponly=True,
                               samesite="Lax", secure=self.request.protocol == "https")
        self.current_user = user

    async def logout(self) -> None:
        """End the session on the server and clear its cookie."""
        token = self.session_token()
        if token is not None:
            await self.write_job(lambda storage: end_session(storage, token))
        self.clear_cookie(SESSION_COOKIE)

    async def reserve_attempt(self, account_key: str | None) -> int:
        """Count a password attempt first; 0, or the seconds to wait (429 and Retry-After set)."""
        address = self.request.remote_ip or ""
        now_s = self.service.clock().timestamp()
        wait_s: float = await self.write_job(
            lambda storage: self.throttle.reserve(storage, account_key, address, now_s))
        if wait_s <= 0:
            return 0
        self.set_status(429)
        self.set_header("Retry-After", str(math.ceil(wait_s)))
        return math.ceil(wait_s)

    async def attempt_succeeded(self, account_key: str) -> None:
        """Clear the account's attempts after a right password."""
        address = self.request.remote_ip or ""
        await self.write_job(
            lambda storage: self.throttle.succeeded(storage, account_key, address))

    def check_xsrf_cookie(self) -> None:
        """Tornado's XSRF check, its refusal said as an expired session."""
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError as error:
            raise SessionExpiredError() from error

    def error_message(self, status_code: int) -> str:
        """What the error page of ``status_code`` says."""
        return PAGE_ERRORS.get(status_code, SERVER_ERROR)

    def login_page(self) -> str:
        """The login form of this part of the site."""
        return "/management/login" if self.request.path.startswith("/management") else "/profile"

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """An error page in the site's layout; an expired form links back to its login."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        expired = isinstance(error, SessionExpiredError)
        try:
            user_meter = self.resident_meter
        except Exception:  # the failure may be the database itself
            user_meter = None
        phrase = "Session expired" if expired else self._reason
        self.render("error.html", status=status_code, title=phrase, expired=expired,
                    message=EXPIRED if expired else self.error_message(status_code),
                    user_meter=user_meter, login_page=self.login_page())

    def content_security_policy(self) -> str:
        """The Content-Security-Policy of this handler's answers."""
        return PAGE_POLICY

    def set_default_headers(self) -> None:
        for name, value in SAFETY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Security-Policy", self.content_security_policy())


class JSONHandler(BaseHandler):
    """An API handler: JSON bodies in and out, errors as {"error": "..."}."""

    def write_json(self, body: Any, status: int = 200) -> None:
        """Answer with ``body`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": self._reason}))
