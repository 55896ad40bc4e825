"""For operators and their monitoring: GET /healthz, GET /metrics, and packet accounting."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import datetime, time, timedelta
from typing import Any

import tornado.web

from metermatrix import metrics
from metermatrix.drift import ClockDrift
from metermatrix.recovery import snapshot_path
from metermatrix.service import MeterService
from metermatrix.storage import Storage
from metermatrix.web.base import JSONHandler

log = logging.getLogger(__name__)

#: /healthz answers 503 when the data folder's disk has less room than this [bytes].
MIN_FREE_BYTES = 64 * 1024 * 1024
#: How long /healthz waits for the writer to commit an empty transaction [s].
PROBE_TIMEOUT_S = 5.0
#: Statuses of /meter answers to packets that were signed and valid.
ACCEPTED = frozenset({200, 201, 409})


class ServiceView:
    """The running service as the metrics read it."""

    def __init__(self, service: MeterService) -> None:
        self.service = service

    def readings_today(self) -> int:
        """Readings in today's store."""
        collector = self.service.collector
        return collector.store.reading_count() if collector is not None else 0

    def snapshot_mtime(self) -> float | None:
        """When the open day's recovery snapshot was written (Unix time), None if never."""
        if self.service.collector is None:
            return None
        path = snapshot_path(self.service.settings.recovery_dir, self.service.open_day)
        try:
            return path.stat().st_mtime
        except OSError:
            return None

    def last_closed_day_end(self) -> datetime | None:
        """The end (local midnight) of the last closed day, None when none is closed."""
        days = self.service.storage.closed_days()
        if not days:
            return None
        return datetime.combine(max(days) + timedelta(days=1), time(0), self.service.settings.tz)


def watch_server(service: MeterService, open_connections: Any) -> None:
    """Let /metrics read the service's state and the HTTP server's open connections."""
    metrics.watch(ServiceView(service), open_connections)


def note_packet(status: int, timestamp: datetime | None, drift: ClockDrift | None) -> None:
    """Count a finished /meter request; an accepted packet's timestamp feeds the drift watch."""
    metrics.count_packet(status)
    if status in ACCEPTED and drift is not None and timestamp is not None:
        drift.observe(timestamp)


def _probe(storage: Storage) -> None:
    with storage.transaction():
        pass


async def health_problem(service: MeterService) -> str | None:
    """Why the server cannot take readings now, or None when the writer commits and the
    disk has room."""
    if service.writer is None:
        return "the writer is not started"
    try:
        await asyncio.wait_for(asyncio.shield(service.writer.run(_probe)), PROBE_TIMEOUT_S)
    except TimeoutError:
        return f"the writer did not commit within {PROBE_TIMEOUT_S:g} s"
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return f"the database cannot be written: {error}"
    failing = metrics.COMMITS.failing()
    if failing is not None:
        return failing
    free = shutil.disk_usage(service.settings.data_dir).free
    if free < MIN_FREE_BYTES:
        return f"the data folder's disk has only {free // (1024 * 1024)} MiB free"
    return None


class HealthHandler(JSONHandler):
    """GET /healthz: 200 when readings can be stored, 503 with the reason otherwise."""

    async def get(self) -> None:
        problem = await health_problem(self.service)
        if problem is None:
            return self.write_json({"status": "ok"})
        self.set_header("Retry-After", "30")
        self.write_json({"status": "failing", "error": problem}, 503)


class MetricsHandler(tornado.web.RequestHandler):
    """GET /metrics: the Prometheus text format."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(metrics.exposition())


def operations_routes() -> list[Any]:
    """The operators' routes."""
    return [(r"/healthz", HealthHandler), (r"/metrics", MetricsHandler)]
