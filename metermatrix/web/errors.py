"""What no route answers: a 404 page in the site's layout (JSON under ``/api/``), and the
favicon. The error pages themselves are ``BaseHandler.write_error``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import tornado.web

from metermatrix.web.base import BaseHandler


class NotFoundHandler(BaseHandler):
    """Every URL without a route (the application's ``default_handler_class``)."""

    def check_xsrf_cookie(self) -> None:
        """Nothing is changed here: a form sent to an unknown URL is a 404, not expired."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if not self.request.path.startswith("/api/"):
            return super().write_error(status_code, **kwargs)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": self._reason}))


def favicon_routes(static_dir: Path) -> list[tuple[str, type[tornado.web.RequestHandler],
                                                   dict[str, Any]]]:
    """``/favicon.ico`` from the static folder (browsers ask for it at the root)."""
    return [(r"/(favicon\.ico)", tornado.web.StaticFileHandler, {"path": str(static_dir)})]
