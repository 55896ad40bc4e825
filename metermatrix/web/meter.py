"""POST /meter (seed 1.1): authenticated, validated, durable before it is acknowledged."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import tornado.web

from metermatrix.batches import (
    HEADEND_HEADER,
    HEADEND_SIGNATURE_HEADER,
    MAX_BATCH_BYTES,
    ParsedBatch,
    parse_batch,
    verify_headend,
)
from metermatrix.collector import NotStoredError, Receipt, accept_batch
from metermatrix.packets import (
    Packet,
    PacketError,
    PacketRules,
    decode_body,
    parse_meter_id,
    parse_packet,
)
from metermatrix.recovery import iter_snapshot
from metermatrix.service import MeterService
from metermatrix.signing import SIGNATURE_HEADER, verify_signature
from metermatrix.web.base import JSONHandler

_STATUS = {"stored": 201, "duplicate": 200, "conflict": 409, "imported": 409}


@dataclass(slots=True)
class PacketAnswer:
    """What ``POST /meter`` answers: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    #: The send instant of a signed, valid packet (for the clock-drift watch).
    timestamp: datetime | None = None


def check_packet(service: MeterService, signature: str | None, body: bytes
                 ) -> Packet | PacketAnswer:
    """The packet of a signed, valid body, or the answer that refuses it."""
    if signature is None and not service.settings.insecure_meters:
        return PacketAnswer(401, {"error": f"missing {SIGNATURE_HEADER} header"})
    try:
        data = decode_body(body)
        meter_id = parse_meter_id(data["id"])
        if signature is not None or not service.settings.insecure_meters:
            if not verify_signature(service.fleet_key, meter_id, body, signature or ""):
                return PacketAnswer(401, {"error": "signature does not match this meter"})
        return parse_packet(data, service.clock(), service.rules)
    except PacketError as error:
        return PacketAnswer(error.status, {"error": str(error)})


def receipt_answer(service: MeterService, receipt: Receipt) -> PacketAnswer:
    """The answer to a filed packet."""
    headers = {"X-MeterMatrix-Worker": str(os.getpid())} if service.shared else {}
    return PacketAnswer(_STATUS[receipt.outcome], receipt.as_json(), headers,
                        receipt.packet.timestamp)


def not_stored_answer(packet: Packet, error: NotStoredError) -> PacketAnswer:
    """The answer to a packet whose reading could not be made durable: send it again."""
    return PacketAnswer(503, {"error": f"reading not stored, send again: {error}"},
                        {"Retry-After": "30"}, packet.timestamp)


async def answer_packet(service: MeterService, signature: str | None, body: bytes
                        ) -> PacketAnswer:
    """Check one packet and file it: the answer, once a stored reading is durable.

    ``MeterHandler`` answers with it; the server's own ``/meter`` path
    (``metermatrix.web.packetpath``) does the same from callbacks.
    """
    checked = check_packet(service, signature, body)
    if isinstance(checked, PacketAnswer):
        return checked
    assert service.collector is not None
    try:
        receipt = await service.collector.accept(checked)
    except NotStoredError as error:
        return not_stored_answer(checked, error)
    return receipt_answer(service, receipt)


class MeterHandler(JSONHandler):
    """Meters post one packet per half hour here (``answer_packet``)."""

    def check_xsrf_cookie(self) -> None:
        """Meters sign their packets instead of carrying a session."""

    async def post(self) -> None:
        answer = await answer_packet(self.service, self.request.headers.get(SIGNATURE_HEADER),
                                     self.request.body)
        self.packet_timestamp = answer.timestamp  # for the drift watch (log_request)
        for name, value in answer.headers.items():
            self.set_header(name, value)
        self.write_json(answer.body, answer.status)


class StatusHandler(JSONHandler):
    """GET /api/v1/status: what meters and simulators need to know about this server."""

    def get(self) -> None:
        service = self.service
        store = service.collector.store if service.collector else None
        self.write_json({
            "timezone": service.settings.timezone,
            "open_day": service.open_day.isoformat() if store is not None else None,
            "late_days": service.settings.late_days,
            "readings_today": store.reading_count() if store is not None else 0,
            "clock_drift": self.application.settings["clock_drift"].status(),
        })


class TodayHandler(JSONHandler):
    """GET /api/v1/today: today's readings in the seed's nested format (management only)."""

    async def get(self) -> None:
        if self.manager_name is None or self.service.collector is None:
            return self.write_json({"error": "a management login is required"}, 403)
        self.set_header("Content-Type", "application/json")
        for piece in iter_snapshot(self.service.collector.store):
            self.write(piece)
            await self.flush()


@tornado.web.stream_request_body
class BatchHandler(JSONHandler):
    """POST /meter/batch: a head-end system's NDJSON batch of packets, signed as a whole.

    The only route that takes bodies above the server's 1 MiB: its limit is raised for
    this request alone, before the body is read.
    """

    def check_xsrf_cookie(self) -> None:
        """Head-end systems sign their batches instead of carrying a session."""

    def prepare(self) -> None:
        """Allow a batch's body size and collect the body as it arrives."""
        super().prepare()
        self._chunks: list[bytes] = []
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(MAX_BATCH_BYTES)

    def data_received(self, chunk: bytes) -> None:
        """Keep each piece of the body."""
        self._chunks.append(chunk)

    async def post(self) -> None:
        service = self.service
        name = self.request.headers.get(HEADEND_HEADER, "")
        signature = self.request.headers.get(HEADEND_SIGNATURE_HEADER, "")
        body = b"".join(self._chunks)
        self._chunks = []
        try:  # a worker thread: up to 64 MiB of lines must not hold up the meters
            batch = await asyncio.to_thread(_checked_batch, service.fleet_key, name, body,
                                            signature, service.clock(), service.rules)
        except PacketError as error:
            return self.write_json({"error": str(error)}, error.status)
        assert service.collector is not None
        try:
            result = await accept_batch(service.collector, batch)
        except NotStoredError as error:
            self.set_header("Retry-After", "30")
            return self.write_json({"error": f"batch not stored, send again: {error}"}, 503)
        self.write_json(result.as_json(), 200)


def _checked_batch(fleet_key: bytes, name: str, body: bytes, signature: str, now: datetime,
                   rules: PacketRules) -> ParsedBatch:
    """The batch's lines, once its signature was checked (PacketError 401 if it is wrong)."""
    if not name or not verify_headend(fleet_key, name, body, signature):
        raise PacketError(f"missing or wrong {HEADEND_HEADER} / {HEADEND_SIGNATURE_HEADER}",
                          status=401)
    return parse_batch(body, now, rules)
