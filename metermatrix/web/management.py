"""Management accounts: log in and out, and a home page linking to the dashboards.

Routes (see ``management_routes``): ``/management/login``, ``/management/logout`` and
``/management`` (home). Failed logins are rate-limited per client address and per username.
A resident's session does not count: the dashboards need a ``manager:`` session.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import tornado.web

from metermatrix.accounts import verify_password
from metermatrix.voila import DASHBOARDS
from metermatrix.web.base import BaseHandler

#: Where a manager lands after logging in when no page was asked for.
HOME = "/management"
MAX_USERNAME = 64
MAX_PASSWORD = 1024


class LoginLimiter:
    """At most ``failures`` failed logins per key (address or username) in ``window_s``."""

    def __init__(self, failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window_s = window_s
        self.clock = clock
        self._failed: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self._failed.get(key, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            self._failed.pop(key, None)
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again (0 when all may)."""
        wait_s = 0.0
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.failures:
                wait_s = max(wait_s, times[0] + self.window_s - self.clock())
        return wait_s

    def failed(self, *keys: str) -> None:
        """Record a failed attempt for each key."""
        for key in keys:
            self._failed.setdefault(key, deque()).append(self.clock())
        if len(self._failed) > 100_000:  # a flood of keys: forget the stale ones
            for stale in [key for key in list(self._failed) if not self._recent(key)]:
                self._failed.pop(stale, None)

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of each key."""
        for key in keys:
            self._failed.pop(key, None)


def local_target(target: str, default: str = HOME) -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirects)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


class ManagementPage(BaseHandler):
    """Pages of the management area."""

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace["manager"] = self.manager_name
        return namespace


class ManagementLoginHandler(ManagementPage):
    """/management/login: username and password of a management account."""

    def initialize(self, limiter: LoginLimiter) -> None:
        self.limiter = limiter

    def get(self) -> None:
        if self.manager_name is not None:
            self.redirect(local_target(self.get_argument("next", "")))
            return
        self.show_form("", "")

    async def post(self) -> None:
        username = self.get_body_argument("username", "").strip()[:MAX_USERNAME]
        password = self.get_body_argument("password", "")[:MAX_PASSWORD]
        keys = (f"address:{self.request.remote_ip}", f"user:{username.lower()}")
        if wait_s := math.ceil(self.limiter.retry_after(*keys)):
            self.set_status(429)
            self.set_header("Retry-After", str(wait_s))
            return self.show_form(username, f"Too many failed attempts. Try again in "
                                            f"{wait_s} seconds.")
        stored = self.service.storage.manager_password_hash(username) if username else None
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, verify_password, stored, password):
            self.limiter.failed(*keys)
            self.set_status(401)
            return self.show_form(username, "That username and password do not match a "
                                            "management account.")
        self.limiter.succeeded(*keys)
        self.login(f"manager:{username}")
        self.redirect(local_target(self.get_argument("next", "")), status=303)

    def show_form(self, username: str, error: str) -> None:
        """The login form, keeping the username (never the password)."""
        self.render("management_login.html", username=username, error=error,
                    next_url=self.get_argument("next", ""),
                    resident=self.resident_meter is not None)


class ManagementLogoutHandler(BaseHandler):
    """/management/logout: end the session."""

    def post(self) -> None:
        self.logout()
        self.redirect("/management/login", status=303)


class ManagementHomeHandler(ManagementPage):
    """/management: the dashboards a manager can open."""

    def get(self) -> None:
        if self.manager_name is None:
            self.redirect("/management/login?next=/management")
            return
        self.render("management_home.html", dashboards=DASHBOARDS)


def management_routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The management area's routes, sharing one login limiter."""
    limiter = LoginLimiter()
    return [
        (r"/management/login", ManagementLoginHandler, {"limiter": limiter}),
        (r"/management/logout", ManagementLogoutHandler, {}),
        (r"/management/?", ManagementHomeHandler, {}),
    ]
