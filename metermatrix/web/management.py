"""Management accounts: log in and out, and a home page linking to the dashboards.

Routes (see ``management_routes``): ``/management/login``, ``/management/logout`` and
``/management`` (home: today's headline figures and the dashboards). Logins share the
residents' throttle (per address and per account). A resident's session does not count:
the dashboards need a ``manager:`` session.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from metermatrix.accounts import verify_password
from metermatrix.headlines import Headlines, stored_figures, today_headlines, yesterday_of
from metermatrix.sessions import manager_user
from metermatrix.voila import DASHBOARDS
from metermatrix.web.base import BaseHandler, local_target
from metermatrix.web.residents import in_thread

#: Where a manager lands after logging in when no page was asked for.
HOME = "/management"
MAX_USERNAME = 64
MAX_PASSWORD = 1024


class ManagementPage(BaseHandler):
    """Pages of the management area."""

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace["manager"] = self.manager_name
        return namespace


class ManagementLoginHandler(ManagementPage):
    """/management/login: username and password of a management account."""

    def get(self) -> None:
        if self.manager_name is not None:
            self.redirect(local_target(self.get_argument("next", ""), HOME))
            return
        self.show_form("", "")

    async def post(self) -> None:
        username = self.get_body_argument("username", "").strip()[:MAX_USERNAME]
        password = self.get_body_argument("password", "")[:MAX_PASSWORD]
        account = manager_user(username.lower()) if username else None
        if wait_s := await self.reserve_attempt(account):
            return self.show_form(username, f"Too many failed attempts. Try again in "
                                            f"{wait_s} seconds.")
        stored = self.service.storage.manager_password_hash(username) if username else None
        if not await in_thread(verify_password, stored, password):
            self.set_status(401)
            return self.show_form(username, "That username and password do not match a "
                                            "management account.")
        assert account is not None
        await self.attempt_succeeded(account)
        await self.login(manager_user(username))
        self.redirect(local_target(self.get_argument("next", ""), HOME), status=303)

    def show_form(self, username: str, error: str) -> None:
        """The login form, keeping the username (never the password)."""
        self.render("management_login.html", username=username, error=error,
                    next_url=self.get_argument("next", ""),
                    resident=self.resident_meter is not None)


class ManagementLogoutHandler(BaseHandler):
    """/management/logout: end the session."""

    async def post(self) -> None:
        await self.logout()
        self.redirect("/management/login", status=303)


class ManagementHomeHandler(ManagementPage):
    """/management: today's headline figures and the dashboards a manager can open."""

    async def get(self) -> None:
        if self.manager_name is None:
            self.redirect("/management/login?next=/management")
            return
        self.render("management_home.html", dashboards=DASHBOARDS,
                    headlines=await self.headlines())

    async def headlines(self) -> Headlines | None:
        """Today's figures (None before the collector has started)."""
        collector = self.service.collector
        if collector is None:
            return None
        store = collector.store
        stored = await self.service.readers.run(stored_figures, yesterday_of(store))
        return today_headlines(store, stored, self.service.clock(), self.service.settings.tz)


def management_routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The management area's routes."""
    return [
        (r"/management/login", ManagementLoginHandler, {}),
        (r"/management/logout", ManagementLogoutHandler, {}),
        (r"/management/?", ManagementHomeHandler, {}),
    ]
