"""Prometheus metrics of the running server, and the writer's health for /healthz.

Counters and histograms are updated where things happen (the writer's commit, the
snapshot, the access log); gauges of state (today's readings, snapshot age, the last
close, open connections) are read from the running service when /metrics is scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

PACKETS = Counter("metermatrix_packets", "Packets posted to /meter, by outcome", ["outcome"])
COMMIT_SECONDS = Histogram("metermatrix_commit_seconds", "Duration of one group commit [s]",
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1.0, 2.5, 5.0, 10.0))
GROUP_SIZE = Histogram("metermatrix_commit_group_size", "Requests in one group commit",
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000))
STORAGE_ERRORS = Counter("metermatrix_storage_errors", "Commits the database refused")
SNAPSHOT_SECONDS = Gauge("metermatrix_snapshot_duration_seconds",
                         "Duration of the last recovery snapshot [s]")
SNAPSHOT_FAILURES = Counter("metermatrix_snapshot_failures", "Recovery snapshots that failed")
READINGS_TODAY = Gauge("metermatrix_readings_today", "Readings in today's store")
SNAPSHOT_AGE = Gauge("metermatrix_snapshot_age_seconds",
                     "Age of the open day's recovery snapshot [s] (-1: none yet)")
LAST_CLOSE = Gauge("metermatrix_last_closed_day_end_timestamp_seconds",
                   "End of the last closed day, as a Unix time [s] (0: none closed)")
OPEN_CONNECTIONS = Gauge("metermatrix_open_connections", "Client connections open now")

#: Outcome label of each /meter status.
OUTCOMES = {201: "stored", 200: "duplicate", 409: "conflict", 401: "unauthorized",
            503: "not_stored"}


@dataclass
class CommitHealth:
    """When the writer last committed, and the last commit it could not make."""

    last_ok: float = 0.0
    last_failure: float = 0.0
    last_error: str = ""

    def failing(self, max_age_s: float = 300.0) -> str | None:
        """Why the writer is failing, or None when its last commit succeeded (or failed
        more than ``max_age_s`` ago)."""
        if self.last_failure > self.last_ok and time.time() - self.last_failure < max_age_s:
            return f"the last commit failed: {self.last_error}"
        return None


COMMITS = CommitHealth()
_lock = threading.Lock()
#: status -> its child of PACKETS (``labels`` looks the child up each time it is called).
_PACKET_COUNTERS: dict[int, Counter] = {}


def count_packet(status: int) -> None:
    """Count one /meter answer under its outcome."""
    counter = _PACKET_COUNTERS.get(status)
    if counter is None:
        counter = _PACKET_COUNTERS[status] = PACKETS.labels(
            OUTCOMES.get(status, "invalid" if 400 <= status < 500 else "error"))
    counter.inc()


@contextmanager
def timed_commit(group_size: int) -> Iterator[None]:
    """Time a group commit of ``group_size`` requests; count it as a storage error if it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        record_commit_failure(error)
        raise
    record_commit(time.perf_counter() - started, group_size)


def record_commit_failure(error: Exception) -> None:
    """Count a group commit the database refused."""
    STORAGE_ERRORS.inc()
    with _lock:
        COMMITS.last_failure = time.time()
        COMMITS.last_error = str(error) or type(error).__name__


def record_commit(seconds: float, group_size: int) -> None:
    """Count a group commit of ``group_size`` requests that took ``seconds``."""
    COMMIT_SECONDS.observe(seconds)
    GROUP_SIZE.observe(group_size)
    with _lock:
        COMMITS.last_ok = time.time()


async def timed_snapshot(task: Awaitable[bool]) -> bool:
    """Await a recovery snapshot, recording its duration and failure."""
    started = time.perf_counter()
    ok = await task
    SNAPSHOT_SECONDS.set(time.perf_counter() - started)
    if not ok:
        SNAPSHOT_FAILURES.inc()
    return ok


class Watched(Protocol):
    """What the state gauges read from the running service."""

    def readings_today(self) -> int: ...
    def snapshot_mtime(self) -> float | None: ...
    def last_closed_day_end(self) -> datetime | None: ...


def watch(service: Watched, open_connections: Callable[[], int]) -> None:
    """Read the state gauges from ``service`` and the HTTP server at every scrape."""
    READINGS_TODAY.set_function(service.readings_today)
    SNAPSHOT_AGE.set_function(lambda: _age_s(service.snapshot_mtime()))
    LAST_CLOSE.set_function(lambda: _timestamp(service.last_closed_day_end()))
    OPEN_CONNECTIONS.set_function(open_connections)


def _age_s(mtime: float | None) -> float:
    return -1.0 if mtime is None else max(0.0, time.time() - mtime)


def _timestamp(moment: datetime | None) -> float:
    return 0.0 if moment is None else moment.timestamp()


def exposition() -> bytes:
    """Every metric in the Prometheus text format."""
    return generate_latest(REGISTRY)

