"""``POST /meter`` answered by the HTTP server itself, below Tornado's RequestHandler.

A meter's packet needs none of what a RequestHandler brings (routing, cookies, XSRF,
templates, its per-request set-up and its output buffering), and at a city's rate that
machinery was a large share of the server's time per packet. The request gate of
``metermatrix.web.connections`` hands ``POST /meter`` to a ``PacketDelegate``, which
collects the body, answers with ``answer_packet`` (the same check and filing as
``MeterHandler``, which serves an application run without this server), writes the
status, the site's safety headers and the JSON body, and logs and counts the answer as
the application's access log does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from http.client import responses
from typing import Any

import orjson
import tornado.web
from tornado import httputil

from metermatrix.signing import SIGNATURE_HEADER
from metermatrix.web.app import log_answer
from metermatrix.web.base import PAGE_POLICY, SAFETY_HEADERS
from metermatrix.web.meter import PacketAnswer, answer_packet
from metermatrix.web.operations import note_packet

log = logging.getLogger(__name__)

#: The headers of every answer to a packet (with its Content-Length and Date).
_HEADERS = {"Content-Type": "application/json", **SAFETY_HEADERS,
            "Content-Security-Policy": PAGE_POLICY}
#: Answers still being written (a task must be referenced until it is done).
_answering: set[asyncio.Future[None]] = set()


def is_packet(start_line: httputil.RequestStartLine) -> bool:
    """True for ``POST /meter`` (with or without a query)."""
    return start_line.method == "POST" and start_line.path.split("?", 1)[0] == "/meter"


class PacketDelegate(httputil.HTTPMessageDelegate):
    """One ``POST /meter`` request: its body, then the answer."""

    def __init__(self, application: tornado.web.Application,
                 connection: httputil.HTTPConnection, start_line: httputil.RequestStartLine,
                 headers: httputil.HTTPHeaders) -> None:
        self.application = application
        self.connection = connection
        self.uri = start_line.path
        self.signature = headers.get(SIGNATURE_HEADER)
        self.chunks: list[bytes] = []
        self.began = time.perf_counter()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self.chunks.append(chunk)
        return None

    def finish(self) -> None:
        task = asyncio.ensure_future(self._answer(b"".join(self.chunks)))
        _answering.add(task)
        task.add_done_callback(_answering.discard)

    def on_connection_close(self) -> None:
        """The meter left before its answer: the packet is filed all the same."""

    async def _answer(self, body: bytes) -> None:
        settings: dict[str, Any] = self.application.settings
        try:
            answer = await answer_packet(settings["service"], self.signature, body)
        except Exception:  # noqa: BLE001 - answered as the application answers a failure
            log.exception("POST /meter failed")
            answer = PacketAnswer(500, {"error": "Internal Server Error"})
        payload = orjson.dumps(answer.body)
        headers = httputil.HTTPHeaders(_HEADERS)
        headers["Content-Length"] = str(len(payload))
        headers["Date"] = httputil.format_timestamp(time.time())
        for name, value in answer.headers.items():
            headers[name] = value
        reason = responses.get(answer.status, "Unknown")
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", answer.status, reason), headers, payload)
        self.connection.finish()
        note_packet(answer.status, answer.timestamp, settings.get("clock_drift"))
        log_answer(answer.status, "/meter", self._summary, time.perf_counter() - self.began)

    def _summary(self) -> str:
        context = getattr(self.connection, "context", None)
        return f"POST {self.uri} ({getattr(context, 'remote_ip', '?')})"
