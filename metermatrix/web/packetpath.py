"""``POST /meter`` answered by the HTTP server itself, below Tornado's RequestHandler.

A meter's packet needs none of what a RequestHandler brings (routing, cookies, XSRF,
templates, its per-request set-up and its output buffering), and at a city's rate that
machinery was a large share of the server's time per packet. The request gate of
``metermatrix.web.connections`` hands ``POST /meter`` to a ``PacketDelegate``, which
collects the body, checks it as ``MeterHandler`` does (``check_packet``), files it with
``Collector.accept_then`` and answers from the callback that learns the receipt: a new
reading of the open day is answered from the pass that resolves its group commit, with
no task, no future and no callback scheduled for it. The answer (status, the site's
safety headers, length, date, JSON body) is written to the stream as one prepared piece
of bytes, and logged and counted as the application's access log does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from functools import cache, lru_cache
from http.client import responses

import orjson
import tornado.web
from tornado import httputil
from tornado.http1connection import HTTP1Connection

from metermatrix.collector import NotStoredError, Receipt
from metermatrix.packets import Packet
from metermatrix.service import MeterService
from metermatrix.signing import SIGNATURE_HEADER
from metermatrix.web.app import log_answer
from metermatrix.web.base import PAGE_POLICY, SAFETY_HEADERS
from metermatrix.web.meter import (
    PacketAnswer,
    check_packet,
    not_stored_answer,
    receipt_answer,
)
from metermatrix.web.operations import note_packet

log = logging.getLogger(__name__)

#: The header lines of every answer to a packet (before its Date and Content-Length).
_FIXED_HEADERS = b"".join(
    f"{name}: {value}\r\n".encode("latin1")
    for name, value in {"Content-Type": "application/json", **SAFETY_HEADERS,
                        "Content-Security-Policy": PAGE_POLICY}.items())
_INTERNAL_ERROR = PacketAnswer(500, {"error": "Internal Server Error"})


def is_packet(start_line: httputil.RequestStartLine) -> bool:
    """True for ``POST /meter`` (with or without a query)."""
    return start_line.method == "POST" and start_line.path.split("?", 1)[0] == "/meter"


@cache
def status_line(status: int) -> bytes:
    """``HTTP/1.1 201 Created\\r\\n`` and the like."""
    return f"HTTP/1.1 {status} {responses.get(status, 'Unknown')}\r\n".encode("latin1")


def date_line(now: float) -> bytes:
    """The ``Date`` header line for the instant ``now`` [s since the epoch], made once a
    second."""
    return _date_line_of(int(now))


@lru_cache(maxsize=1)
def _date_line_of(second: int) -> bytes:
    return f"Date: {httputil.format_timestamp(second)}\r\n".encode("latin1")


class PacketDelegate(httputil.HTTPMessageDelegate):
    """One ``POST /meter`` request: its body, then the answer."""

    def __init__(self, application: tornado.web.Application,
                 connection: httputil.HTTPConnection, start_line: httputil.RequestStartLine,
                 headers: httputil.HTTPHeaders) -> None:
        assert isinstance(connection, HTTP1Connection)
        self.service: MeterService = application.settings["service"]
        self.drift = application.settings.get("clock_drift")
        self.connection = connection
        self.uri = start_line.path
        self.signature = headers.get(SIGNATURE_HEADER)
        self.version = start_line.version
        #: An HTTP/1.0 client that asked to keep the connection is told it is kept.
        self.keep_alive_1_0 = (start_line.version == "HTTP/1.0"
                               and headers.get("Connection", "").lower() == "keep-alive")
        self.chunks: list[bytes] = []
        self.packet: Packet | None = None
        self.began = time.perf_counter()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self.chunks.append(chunk)
        return None

    def finish(self) -> None:
        try:
            checked = check_packet(self.service, self.signature, b"".join(self.chunks))
            if isinstance(checked, PacketAnswer):
                self._send(checked)
                return
            assert self.service.collector is not None
            self.packet = checked
            self.service.collector.accept_then(checked, self._filed)
        except Exception:  # noqa: BLE001 - answered as the application answers a failure
            log.exception("POST /meter failed")
            self._send(_INTERNAL_ERROR)

    def on_connection_close(self) -> None:
        """The meter left before its answer: the packet is filed all the same."""

    def _filed(self, outcome: Receipt | BaseException) -> None:
        """The packet's receipt, or why its reading was not stored: answer it."""
        assert self.packet is not None
        if isinstance(outcome, Receipt):
            answer = receipt_answer(self.service, outcome)
        elif isinstance(outcome, NotStoredError):
            answer = not_stored_answer(self.packet, outcome)
        else:
            log.error("POST /meter failed", exc_info=outcome)
            answer = _INTERNAL_ERROR
        self._send(answer)

    def _send(self, answer: PacketAnswer) -> None:
        """Write the whole answer at once and finish the request, as ``write_headers`` and
        ``finish`` would (Connection header included); a meter that left is not written to."""
        connection = self.connection
        if not connection.stream.closed():
            payload = orjson.dumps(answer.body)
            head = [status_line(answer.status), _FIXED_HEADERS, date_line(time.time()),
                    b"Content-Length: %d\r\n" % len(payload)]
            head += [f"{name}: {value}\r\n".encode("latin1")
                     for name, value in answer.headers.items()]
            if self.version == "HTTP/1.1" and connection._disconnect_on_finish:
                head.append(b"Connection: close\r\n")  # Tornado closes it after this answer
            elif self.keep_alive_1_0:
                head.append(b"Connection: Keep-Alive\r\n")
            head += [b"\r\n", payload]
            connection._pending_write = connection.stream.write(b"".join(head))
            connection.finish()
        note_packet(answer.status, answer.timestamp, self.drift)
        log_answer(answer.status, "/meter", self._summary, time.perf_counter() - self.began)

    def _summary(self) -> str:
        context = getattr(self.connection, "context", None)
        return f"POST {self.uri} ({getattr(context, 'remote_ip', '?')})"
