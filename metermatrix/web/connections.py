"""The HTTP server in front of the application: timeouts, a connection cap, request gates.

Tornado keeps a connection open as long as its client wants, so slow clients could hold
every file descriptor and starve the meters. This server times out idle connections
and slow bodies, refuses connections past a cap (below the process's file limit) with a
503 JSON answer, and answers two malformed requests that Tornado would otherwise drop
or refuse bare: oversized headers (431) and a non-JSON body on ``/meter`` (415).

The timeouts are kept as deadlines per connection, swept a few times a second
(``Deadlines``), instead of Tornado's own: those wrap each read of a request head and
of a body in a timer of its own, two timers set and cancelled per packet.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable
from typing import Any

import orjson
import tornado.httpserver
import tornado.ioloop
import tornado.web
from tornado import gen, httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError, UnsatisfiableReadError

from metermatrix.web.packetpath import PacketDelegate, is_packet

log = logging.getLogger(__name__)

#: Largest request head (request line and headers) a client may send [bytes].
MAX_HEADER_BYTES = 64 * 1024
#: How much of an oversized head is read so it can be answered with a 431 [bytes];
#: beyond this the connection is closed without an answer.
HEADER_READ_LIMIT_BYTES = 512 * 1024
#: File descriptors kept free of client connections for the database, logs and children.
RESERVED_FDS = 64
#: How long a refused connection may take to send its request head [s].
REFUSAL_READ_S = 0.25
#: Retry-After of a refused connection [s].
REFUSAL_RETRY_S = 5
#: Longest pause between two sweeps of the connections' deadlines [s].
SWEEP_EVERY_S = 1.0
#: Content types /meter reads as its JSON body (urllib sends the form type by default).
METER_CONTENT_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream",
                                 "application/x-www-form-urlencoded"})


def connection_cap(wanted: int) -> int:
    """``wanted`` connections, lowered to fit under the soft RLIMIT_NOFILE with a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


def response_bytes(status: int, reason: str, body: dict[str, Any],
                   extra: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response with a JSON body that closes the connection."""
    payload = orjson.dumps(body)
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def head_size(start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> int:
    """About how many bytes the request line and headers took on the wire."""
    size = len(start_line.method) + len(start_line.path) + len(start_line.version) + 4
    return size + sum(len(name) + len(value) + 4 for name, value in headers.get_all())


def refusal_for(start_line: httputil.RequestStartLine,
                headers: httputil.HTTPHeaders) -> tuple[int, str, str] | None:
    """(status, reason, message) for a request refused before the application sees it."""
    size = head_size(start_line, headers)
    if size > MAX_HEADER_BYTES:
        return (431, "Request Header Fields Too Large",
                f"request headers of {size} bytes are over the limit of {MAX_HEADER_BYTES}")
    path = start_line.path.split("?", 1)[0]
    if path == "/meter" and start_line.method == "POST":
        content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type not in METER_CONTENT_TYPES and not content_type.endswith("+json"):
            return (415, "Unsupported Media Type",
                    f"a packet is a JSON object sent as application/json, not {content_type}")
    return None


class Deadlines:
    """When each open connection must have sent its next request head, or the body of its
    request, by; ``sweep`` closes those past their deadline (and forgets closed ones)."""

    def __init__(self, idle_s: float, body_s: float) -> None:
        self.idle_s = idle_s
        self.body_s = body_s
        #: stream -> (deadline on time.monotonic(), "head" or "body")
        self._due: dict[IOStream, tuple[float, str]] = {}

    def waiting_for_head(self, stream: IOStream) -> None:
        """A connection waits for its next request (Tornado's idle connection timeout)."""
        self._due[stream] = (time.monotonic() + self.idle_s, "head")

    def waiting_for_body(self, stream: IOStream) -> None:
        """A request head arrived: its body must follow within the body timeout."""
        self._due[stream] = (time.monotonic() + self.body_s, "body")

    def answering(self, stream: IOStream) -> None:
        """The request was read (or the connection closed): no deadline until the next."""
        self._due.pop(stream, None)

    def sweep(self) -> None:
        """Close every connection past its deadline; forget connections already closed."""
        now = time.monotonic()
        for stream, (due, waiting) in list(self._due.items()):
            if stream.closed():
                del self._due[stream]
            elif due <= now:
                del self._due[stream]
                if waiting == "body":
                    log.info("closed a connection from %s: its request body took over %g s",
                             _peer(stream), self.body_s)
                stream.close()


def _peer(stream: IOStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except (OSError, AttributeError, IndexError):
        return "?"


class RequestGate(httputil.HTTPMessageDelegate):
    """Answers refused requests itself, hands ``POST /meter`` to a ``PacketDelegate``
    (``metermatrix.web.packetpath``) and every other request to the application."""

    def __init__(self, delegate: httputil.HTTPMessageDelegate,
                 connection: httputil.HTTPConnection,
                 application: tornado.web.Application | None = None,
                 deadlines: Deadlines | None = None) -> None:
        self.delegate = delegate
        self.connection = connection
        self.application = application
        self.refused = False
        self.deadlines = deadlines
        self.stream = connection.stream if isinstance(connection, HTTP1Connection) else None
        if deadlines is not None and self.stream is not None:
            deadlines.waiting_for_head(self.stream)

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        if self.deadlines is not None and self.stream is not None:
            self.deadlines.waiting_for_body(self.stream)
        refusal = refusal_for(start_line, headers)
        if refusal is None:
            if self.application is not None and is_packet(start_line):
                self.delegate = PacketDelegate(self.application, self.connection,
                                               start_line, headers)
                return None
            return self.delegate.headers_received(start_line, headers)
        self.refused = True
        self._read()
        status, reason, message = refusal
        log.info("refused %s %s: %s", start_line.method, start_line.path[:200], message)
        payload = orjson.dumps({"error": message})
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, reason),
            httputil.HTTPHeaders({"Content-Type": "application/json",
                                  "Content-Length": str(len(payload)), "Connection": "close"}),
            payload)
        self.connection.finish()
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return None if self.refused else self.delegate.data_received(chunk)

    def finish(self) -> None:
        self._read()
        if not self.refused:
            self.delegate.finish()

    def on_connection_close(self) -> None:
        self._read()
        if not self.refused:
            self.delegate.on_connection_close()

    def _read(self) -> None:
        if self.deadlines is not None and self.stream is not None:
            self.deadlines.answering(self.stream)


class MeterHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with the connection cap and the request gates."""

    def initialize(self, *args: Any, max_connections: int = 1000, **kwargs: Any) -> None:
        kwargs.setdefault("max_header_size", HEADER_READ_LIMIT_BYTES)
        super().initialize(*args, **kwargs)
        idle_connection_timeout = kwargs.get("idle_connection_timeout") or 3600.0
        body_timeout = kwargs.get("body_timeout") or 3600.0
        self.conn_params.header_timeout = None  # kept by ``deadlines`` instead
        self.conn_params.body_timeout = None
        self.deadlines = Deadlines(idle_connection_timeout, body_timeout)
        self._sweeper = tornado.ioloop.PeriodicCallback(
            self.deadlines.sweep,
            1000 * min(SWEEP_EVERY_S, idle_connection_timeout / 4, body_timeout / 4))
        self._sweeper.start()
        self.max_connections = connection_cap(max_connections)
        self.refused_connections = 0
        self._refusals: set[asyncio.Future[None]] = set()

    def stop(self) -> None:
        self._sweeper.stop()
        super().stop()

    @property
    def open_connections(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if self.open_connections < self.max_connections:
            super().handle_stream(stream, address)
            return
        self.refused_connections += 1
        log.warning("refused a connection from %s: %d connections open, the cap is %d",
                    address[0] if address else "?", self.open_connections, self.max_connections)
        task = asyncio.ensure_future(refuse_stream(stream))
        self._refusals.add(task)
        task.add_done_callback(self._refusals.discard)

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        application = self.request_callback
        return RequestGate(super().start_request(server_conn, request_conn), request_conn,
                           application if isinstance(application, tornado.web.Application)
                           and "service" in application.settings else None, self.deadlines)


async def refuse_stream(stream: IOStream) -> None:
    """Read the request head (briefly), answer 503 with Retry-After and close."""
    answer = response_bytes(503, "Service Unavailable",
                            {"error": "too many open connections, try again shortly"},
                            {"Retry-After": str(REFUSAL_RETRY_S)})
    try:
        await gen.with_timeout(stream.io_loop.time() + REFUSAL_READ_S,
                               stream.read_until_regex(b"\r?\n\r?\n", max_bytes=8192),
                               quiet_exceptions=(StreamClosedError, UnsatisfiableReadError))
        await stream.write(answer)
    except (StreamClosedError, UnsatisfiableReadError, TimeoutError, OSError):
        pass
    finally:
        stream.close()

