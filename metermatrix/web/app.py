"""The Tornado application: one route table for meters, residents and management."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
from tornado.log import access_log

from metermatrix.activation import load_activation_key
from metermatrix.drift import ClockDrift
from metermatrix.secretfile import secret_file
from metermatrix.service import MeterService
from metermatrix.throttle import LoginThrottle
from metermatrix.web.base import BaseHandler
from metermatrix.web.errors import NotFoundHandler, favicon_routes
from metermatrix.web.meter import BatchHandler, MeterHandler, StatusHandler, TodayHandler
from metermatrix.web.operations import note_packet, operations_routes
from metermatrix.web.passwords import password_routes
from metermatrix.web.residents import resident_routes

HERE = Path(__file__).parent


def cookie_secret(data_dir: Path) -> str:
    """The cookie-signing secret, made on first start in the data folder (mode 0600)."""
    return secret_file(data_dir / "cookie.secret")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log: refusals and errors always, accepted meter packets only at debug level."""
    status = handler.get_status()
    if handler.request.path == "/meter":
        note_packet(status, getattr(handler, "packet_timestamp", None),
                    handler.application.settings.get("clock_drift"))
    log_answer(status, handler.request.path, handler._request_summary,
               handler.request.request_time())


def log_answer(status: int, path: str, summary: Callable[[], str], seconds: float) -> None:
    """One access-log line: errors, refusals, pages; /meter's answers only at debug."""
    if status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    elif path == "/meter":
        level = logging.DEBUG
    else:
        level = logging.INFO
    if access_log.isEnabledFor(level):
        access_log.log(level, "%d %s %.2fms", status, summary(), 1000.0 * seconds)


class LandingHandler(BaseHandler):
    """/ : new user or existing user."""

    def get(self) -> None:
        self.render("landing.html")


def make_app(service: MeterService, extra_routes: list[Any] | None = None,
             **options: Any) -> tornado.web.Application:
    """The application with every route; ``service`` is shared by all handlers."""
    routes: list[Any] = [
        (r"/", LandingHandler),
        (r"/meter", MeterHandler),
        (r"/meter/batch", BatchHandler),
        (r"/api/v1/status", StatusHandler),
        (r"/api/v1/today", TodayHandler),
    ]
    routes.extend(resident_routes())
    routes.extend(password_routes())
    routes.extend(operations_routes())
    routes.extend(favicon_routes(HERE / "static"))
    routes.extend(extra_routes or [])
    return tornado.web.Application(
        routes,
        service=service,
        clock_drift=ClockDrift(service.settings.drift_minutes * 60, service.clock),
        template_path=str(HERE / "templates"),
        static_path=str(HERE / "static"),
        cookie_secret=cookie_secret(service.settings.data_dir),
        activation_key=load_activation_key(service.settings.data_dir),
        throttle=LoginThrottle(),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Lax"},
        login_url="/profile",
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        **options,
    )
