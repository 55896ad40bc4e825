"""Reverse proxy to the Voila children under their public paths, for managers only.

HTTP is streamed through ``AsyncHTTPClient`` (long timeouts, hop-by-hop headers dropped, our
cookies never forwarded, the child's token added); the kernel WebSockets are relayed after
connecting upstream first, so the browser is answered with the subprotocol Voila chose.
Every request and every upgrade checks the management login; Origin is compared with Host
here because Tornado 6.6 asks ``check_origin`` only about cross-origin requests. Voila's
shutdown beacon carries no XSRF token, so these paths check Origin instead of ``_xsrf``.
A dashboard page gets the site's header (``siteheader.py``) as it streams through.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import tornado.web
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders, ResponseStartLine, parse_response_start_line

from metermatrix.voila import DASHBOARDS, Dashboards, VoilaProcess
from metermatrix.web.base import BaseHandler
from metermatrix.web.siteheader import TEMPLATE as HEADER_TEMPLATE
from metermatrix.web.siteheader import MarkerReplacer, is_page

log = logging.getLogger(__name__)

#: Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
#: Request headers kept from the child: our session and XSRF cookies, our origin checks.
DROPPED_REQUEST = HOP_BY_HOP | {"host", "cookie", "authorization", "origin", "referer",
                                "content-length"}
#: Response headers the child must not set on our origin (or that Tornado sets itself, or
#: that we set: the framing and content policies are ours).
DROPPED_RESPONSE = HOP_BY_HOP | {"set-cookie", "content-length", "server", "date",
                                 "content-security-policy", "x-frame-options"}
#: Voila's pages run inline scripts and styles, widget code that uses eval, data: and blob:
#: images, and the kernel WebSocket on this origin; nothing from elsewhere, never framed.
VOILA_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
                "object-src 'none'; base-uri 'self'; form-action 'self'; "
                "frame-ancestors 'self'")
#: How long a request waits for a starting child's kernel pool [s].
READY_WAIT_S = 60.0
#: A child that sends no response headers for this long is given up on [s].
FIRST_BYTE_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
#: Whole-response limit: Voila streams a page while its notebook runs [s].
REQUEST_TIMEOUT_S = 600.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Voila's scripts, styles and extensions: fixed for an installed Voila, so browsers may keep
#: them for an hour instead of asking again on every page (Voila sends no Cache-Control).
STATIC_PARTS = ("/voila/static/", "/voila/templates/", "/voila/labextensions/")
STATIC_CACHE = "private, max-age=3600"
KERNEL_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"


def same_origin(headers: HTTPHeaders) -> bool:
    """False when the request comes from another site's page (Origin or Sec-Fetch-Site)."""
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("Origin")
    if origin is None:
        return True  # not sent by a browser page
    return urlsplit(origin).netloc.lower() == headers.get("Host", "").lower()


class DashboardAccess(BaseHandler):
    """Shared checks: a manager's session, the same origin, the child for this path."""

    def initialize(self, child: VoilaProcess | None, client: AsyncHTTPClient | None = None
                   ) -> None:
        self.child = child
        self.client = client

    def content_security_policy(self) -> str:
        """Voila's pages need inline scripts and styles: a policy of their own."""
        return VOILA_POLICY

    def check_xsrf_cookie(self) -> None:
        """Voila posts without our ``_xsrf`` token: require the same origin instead."""
        if not same_origin(self.request.headers):
            raise tornado.web.HTTPError(403, "cross-origin request refused")

    def refuse(self) -> None:
        """Send a visitor without a management session to the login page, or 403."""
        wants_page = self.request.method == "GET" and "text/html" in self.request.headers.get(
            "Accept", "")
        if wants_page and self.current_user is None:
            self.redirect("/management/login?" + urlencode({"next": self.request.uri or "/"}))
            return
        self.send_error(403, reason="management login required")

    async def ready_child(self) -> VoilaProcess | None:
        """The child, once ready; None after an error page was sent."""
        if self.child is None:
            self.send_error(404, reason="dashboards are switched off on this server")
            return None
        if not await self.child.wait_ready(READY_WAIT_S):
            self.set_header("Retry-After", "5")
            self.send_error(503, reason="the dashboard is starting")
            return None
        return self.child

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.render("dashboard_error.html", status_code=status_code, reason=self._reason,
                    retry=status_code in (502, 503, 504), login=status_code == 403)


class HTTPProxyHandler(DashboardAccess):
    """Everything under a dashboard's public path except the kernel WebSockets."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, child: VoilaProcess | None, client: AsyncHTTPClient | None = None
                   ) -> None:
        super().initialize(child, client or AsyncHTTPClient())
        self._upstream_head: ResponseStartLine | None = None
        self._upstream_headers = HTTPHeaders()
        self._started = asyncio.Event()
        self._response_started = False
        self._gave_up = False
        self._header: MarkerReplacer | None = None

    async def prepare(self) -> None:
        if self.manager_name is None:
            self.refuse()

    async def get(self, *args: str) -> None:
        await self.forward()

    head = post = put = patch = delete = options = get

    def upstream_request(self, child: VoilaProcess) -> HTTPRequest:
        """The same request to the child, with its token and without our cookies."""
        headers = HTTPHeaders()
        for name, value in self.request.headers.get_all():
            if name.lower() not in DROPPED_REQUEST:
                headers.add(name, value)
        headers["Authorization"] = f"token {child.token}"
        if self.request.path == child.notebook.public_path:
            headers.pop("Accept-Encoding", None)  # the page stays plain: its header goes in
        has_body = self.request.method in ("POST", "PUT", "PATCH")
        return HTTPRequest(
            f"http://127.0.0.1:{child.port}{self.request.uri}", method=self.request.method,
            headers=headers, body=self.request.body if has_body else None,
            follow_redirects=False, decompress_response=False, allow_nonstandard_methods=True,
            connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
            header_callback=self._on_header_line, streaming_callback=self._on_chunk)

    async def forward(self) -> None:
        """Relay the request and stream the answer; an error page if the child fails."""
        child = await self.ready_child()
        if child is None:
            return
        assert self.client is not None
        fetch = asyncio.ensure_future(self.client.fetch(self.upstream_request(child),
                                                        raise_error=False))
        started: asyncio.Future[Any] = asyncio.ensure_future(self._started.wait())
        waiting: set[asyncio.Future[Any]] = {fetch, started}
        done, _ = await asyncio.wait(waiting, timeout=FIRST_BYTE_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if not done:
            self._gave_up = True
            log.error("%s gave no answer in %.0f s", self.request.uri, FIRST_BYTE_TIMEOUT_S)
            return self.send_error(504, reason="the dashboard did not answer in time")
        response = await fetch
        self._start_response()
        if response.code == 599 and not self._headers_written:
            log.error("%s failed upstream: %s", self.request.uri, response.error)
            return self.send_error(502, reason="the dashboard is not reachable")
        if not self._finished:
            if self._header is not None:
                self.write(self._header.close())
            self.finish()

    def _on_header_line(self, line: str) -> None:
        if self._upstream_head is None:
            if line.startswith("HTTP/"):
                self._upstream_head = parse_response_start_line(line.strip())
            return
        if line.strip():
            self._upstream_headers.parse_line(line)
        elif self._upstream_head.code == 100:  # an interim answer: the real one follows
            self._upstream_head, self._upstream_headers = None, HTTPHeaders()
        else:
            self._started.set()

    def _start_response(self) -> None:
        """Copy the child's status and headers onto our response, once."""
        head = self._upstream_head
        if head is None or self._response_started or self._gave_up:
            return
        self._response_started = True
        self.set_status(head.code, head.reason)
        self.clear_header("Content-Type")
        for name, value in self._upstream_headers.get_all():
            if name.lower() not in DROPPED_RESPONSE:
                self.add_header(name, value)
        if (head.code == 200 and "Cache-Control" not in self._upstream_headers
                and any(part in self.request.path for part in STATIC_PARTS)):
            self.set_header("Cache-Control", STATIC_CACHE)
        if (head.code == 200 and is_page(self._upstream_headers.get("Content-Type"))
                and "Content-Encoding" not in self._upstream_headers):
            self._header = MarkerReplacer(self.render_string(HEADER_TEMPLATE,
                                                             manager=self.manager_name))

    def _on_chunk(self, chunk: bytes) -> None:
        if self._gave_up or self._finished or self.request.connection is None:
            return
        self._start_response()
        self.write(self._header.feed(chunk) if self._header is not None else chunk)
        self.flush()

    def on_connection_close(self) -> None:
        self._gave_up = True


class KernelSocketProxy(DashboardAccess, tornado.websocket.WebSocketHandler):
    """``.../api/kernels/<id>/channels``: the browser's kernel connection, relayed."""

    def initialize(self, child: VoilaProcess | None, client: AsyncHTTPClient | None = None
                   ) -> None:
        super().initialize(child)
        self.upstream: tornado.websocket.WebSocketClientConnection | None = None
        self._pending: list[str | bytes] | None = []

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.manager_name is None or not same_origin(self.request.headers):
            self.set_status(403)
            self.finish("management login and the same origin required")
            return
        child = await self.ready_child()
        if child is None:
            return
        offered = [p.strip() for p in self.request.headers.get(
            "Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        request = HTTPRequest(f"ws://127.0.0.1:{child.port}{self.request.uri}",
                              headers={"Authorization": f"token {child.token}"},
                              connect_timeout=CONNECT_TIMEOUT_S, request_timeout=30)
        try:
            self.upstream = await tornado.websocket.websocket_connect(
                request, on_message_callback=self._from_upstream, subprotocols=offered or None,
                max_message_size=MAX_MESSAGE_BYTES)
        except (OSError, HTTPClientError, tornado.websocket.WebSocketError) as error:
            log.error("kernel socket %s: upstream refused: %s", self.request.uri, error)
            self.set_status(502)
            self.finish("the dashboard kernel is not reachable")
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return False  # called for cross-origin requests only; same_origin() already ran

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        chosen = self.upstream.selected_subprotocol if self.upstream else None
        return chosen if chosen in subprotocols else None

    @property
    def max_message_size(self) -> int:
        return MAX_MESSAGE_BYTES

    def open(self, *args: str, **kwargs: str) -> None:
        pending, self._pending = self._pending or [], None
        for message in pending:
            self._to_browser(message)

    def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            self.upstream.write_message(message, binary=isinstance(message, bytes))

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
        elif self._pending is not None:
            self._pending.append(message)
        else:
            self._to_browser(message)

    def _to_browser(self, message: str | bytes) -> None:
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            self.on_close()

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


def proxy_routes(dashboards: Dashboards | None) -> list[tuple[str, type, dict[str, Any]]]:
    """Routes for every dashboard path (answering 404 pages when dashboards are off)."""
    routes: list[tuple[str, type, dict[str, Any]]] = []
    client = AsyncHTTPClient(force_instance=True, max_clients=64)
    for notebook in DASHBOARDS:
        child = dashboards.children.get(notebook.public_path) if dashboards else None
        base = re.escape(notebook.public_path)
        routes.append((base + r"api/kernels/[^/]+/channels", KernelSocketProxy, {"child": child}))
        routes.append((base + r".*", HTTPProxyHandler, {"child": child, "client": client}))
        routes.append((base.rstrip("/"), tornado.web.RedirectHandler,
                       {"url": notebook.public_path}))
    return routes
