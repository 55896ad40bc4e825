"""Shared handler helpers: the service, the logged-in user, JSON answers."""

from __future__ import annotations

from typing import Any

import orjson
import tornado.web

from metermatrix.service import MeterService


class BaseHandler(tornado.web.RequestHandler):
    """Helpers every page and API handler shares."""

    @property
    def service(self) -> MeterService:
        """The running MeterService."""
        service: MeterService = self.application.settings["service"]
        return service

    def get_current_user(self) -> str | None:
        """``resident:<meter_id>`` or ``manager:<username>`` from the signed cookie."""
        value = self.get_signed_cookie("user", max_age_days=1)
        return value.decode() if value else None

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

    def login(self, user: str) -> None:
        """Set the signed, HttpOnly, SameSite session cookie."""
        self.set_signed_cookie("user", user, expires_days=None, httponly=True,
                               samesite="Lax", secure=self.request.protocol == "https")

    def logout(self) -> None:
        """Clear the session cookie."""
        self.clear_cookie("user")

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")


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
