"""The single writer: one thread owns the master database and commits in groups.

Requests queue up while a commit is on disk; the next commit takes all of them, so an
fsync is shared by every reading that arrived meanwhile (group commit). Futures are
resolved on the event loop only after the commit that holds their reading returned; a
request made with a reply callback (``add_new_then``) is answered in that same pass,
without a future of its own or a callback scheduled per reading.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from metermatrix import metrics
from metermatrix.storage import Outcome, Reading, Storage

log = logging.getLogger(__name__)
T = TypeVar("T")
#: ``reply(result, error)``: called on the event loop once a request's commit returned.
Reply = Callable[[Any, BaseException | None], None]
#: Most queued requests taken into one commit.
MAX_GROUP = 10_000


@dataclass(slots=True)
class _Request:
    kind: str  # "new" (today's, known new), "rows" (many of them), "any" (database
    #            decides), "many" (a list of those), "columns" (one day's, as columns),
    #            "job", "sync"
    future: asyncio.Future[Any] | None
    reading: Reading | None = None
    new_meter: bool = False
    #: "new": the meter's whole row in today's store once the reading was put in it;
    #: "rows": (day, meter_ids, rows, new meter ids); "columns": (day, meter_ids, slots,
    #: energy_wh).
    row: Any = None
    readings: list[Reading] | None = None
    job: Callable[[Storage], Any] | None = None
    result: Any = field(default=None)
    error: BaseException | None = None
    #: Called instead of resolving ``future`` (which is then None).
    reply: Reply | None = None


class ReadingWriter:
    """Queue of writes to the master database, executed by one thread in group commits."""

    def __init__(self, open_storage: Callable[[], Storage], loop: asyncio.AbstractEventLoop):
        self._open_storage = open_storage
        self._loop = loop
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="metermatrix-writer", daemon=True)
        self.commits = 0
        self.readings_committed = 0
        #: Group commits that failed (their callers were told; today's store undoes them).
        self.failed_commits = 0

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued request, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _submit(self, request: _Request) -> asyncio.Future[Any]:
        assert request.future is not None
        self._queue.put(request)
        return request.future

    def add_new(self, reading: Reading, new_meter: bool,
                row: npt.NDArray[np.uint16] | None = None) -> asyncio.Future[Outcome]:
        """Store a reading of the open day that today's store has just accepted.

        ``row`` is a copy of the meter's row in today's store right after the put: the
        commit writes the latest such row of each meter, which holds all its readings.
        Without it the reading is merged into the stored row. Resolves to "stored", or
        "imported" when the meter's total of the day was imported: nothing was written.
        """
        return self._submit(_Request("new", self._loop.create_future(), reading, new_meter,
                                     row=row))

    def add_new_then(self, reading: Reading, new_meter: bool,
                     row: npt.NDArray[np.uint16] | None, reply: Reply) -> None:
        """``add_new``, answered by ``reply(outcome, error)`` on the event loop instead of
        a future: one call per reading from the pass that resolves its commit."""
        self._queue.put(_Request("new", None, reading, new_meter, row=row, reply=reply))

    def add_rows(self, day: date, meter_ids: npt.NDArray[np.int64], rows: npt.NDArray[np.uint16],
                 new_meters: list[int]) -> asyncio.Future[list[int]]:
        """Store the rows of many meters of the open day at once (a head-end's batch).

        Resolves to the ids of the meters refused because their total was imported.
        """
        return self._submit(_Request("rows", self._loop.create_future(),
                                     row=(day, meter_ids, rows, new_meters)))

    def store_many(self, readings: list[Reading]) -> asyncio.Future[list[Outcome]]:
        """``store`` for many readings in one commit: one outcome per reading, in order."""
        return self._submit(_Request("many", self._loop.create_future(), readings=readings))

    def store_columns(self, day: date, meter_ids: npt.NDArray[np.int64],
                      slots: npt.NDArray[np.int64], energy_wh: npt.NDArray[np.int64]
                      ) -> asyncio.Future[npt.NDArray[np.int64]]:
        """``store_many`` for one day's readings as columns: each one's index into OUTCOMES."""
        return self._submit(_Request("columns", self._loop.create_future(),
                                     row=(day, meter_ids, slots, energy_wh)))

    def store(self, reading: Reading) -> asyncio.Future[Outcome]:
        """Store a reading of any day, letting the database decide: stored/duplicate/conflict."""
        return self._submit(_Request("any", self._loop.create_future(), reading))

    def sync(self) -> asyncio.Future[None]:
        """Resolves once everything queued before it is committed."""
        return self._submit(_Request("sync", self._loop.create_future()))

    def run(self, job: Callable[[Storage], T]) -> asyncio.Future[T]:
        """Run ``job(storage)`` on the writer thread, in order with the readings."""
        return self._submit(_Request("job", self._loop.create_future(), job=job))

    # -- the thread ---------------------------------------------------------------
    def _run(self) -> None:
        storage = self._open_storage()
        try:
            while True:
                group = [self._queue.get()]
                while len(group) < MAX_GROUP:
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                requests = [request for request in group if request is not None]
                self._execute(storage, requests)
                self._loop.call_soon_threadsafe(_resolve, requests)
                if len(requests) < len(group):
                    return
        finally:
            storage.close()

    def _execute(self, storage: Storage, requests: list[_Request]) -> None:
        pending: list[_Request] = []
        for request in requests:
            if request.kind == "job":
                self._commit(storage, pending)
                pending = []
                try:
                    request.result = request.job(storage)  # type: ignore[misc]
                except Exception as error:  # noqa: BLE001 - handed to the caller
                    log.exception("writer job failed")
                    request.error = error
            else:
                pending.append(request)
        self._commit(storage, pending)

    def _commit(self, storage: Storage, requests: list[_Request]) -> None:
        if all(request.kind == "sync" for request in requests):
            return  # nothing to write: everything before them is already committed
        new = [r for r in requests if r.kind == "new"]
        try:
            if _put_open_day(storage, requests):
                self.commits += 1
                self.readings_committed += len(new)
                return
        except Exception as error:  # noqa: BLE001 - every caller learns of the failure
            metrics.record_commit_failure(error)
            self._failed(requests, error)
            return
        try:
            with metrics.timed_commit(len(requests)), storage.transaction():
                _put_rows(storage, requests)
                _store_decided(storage, requests)
                for request in requests:
                    if request.kind == "columns":
                        request.result = storage.store_day_readings(*request.row)
        except Exception as error:  # noqa: BLE001 - every caller learns of the failure
            self._failed(requests, error)
            return
        self.commits += 1
        self.readings_committed += sum(r.result == "stored" for r in new)

    def _failed(self, requests: list[_Request], error: Exception) -> None:
        log.error("commit of %d requests failed", len(requests), exc_info=error)
        self.failed_commits += 1
        for request in requests:
            request.error = error


def _put_open_day(storage: Storage, requests: list[_Request]) -> bool:
    """The common group commit, in one write of its own: new readings of known meters,
    all of one day, with their rows (and syncs). True once it is durable; False (nothing
    written) for any other group, or when the day turned out to be closed."""
    latest: dict[int, npt.NDArray[np.uint16]] = {}
    day = None
    for request in requests:
        if request.kind == "sync":
            continue
        reading = request.reading
        if (request.kind != "new" or request.new_meter or request.row is None
                or reading is None or (day is not None and reading.day != day)):
            return False
        day = reading.day
        latest[reading.meter_id] = request.row
    if day is None:
        return False
    started = time.perf_counter()
    if not storage.put_open_day_rows(day, list(latest), np.stack(list(latest.values()))):
        return False
    metrics.record_commit(time.perf_counter() - started, len(requests))
    for request in requests:
        if request.kind == "new":
            request.result = "stored"
    return True


def _put_rows(storage: Storage, requests: list[_Request]) -> None:
    """Write the latest row of each meter among today's new readings and batches, per day.

    Rows are copies of today's store taken in queue order, so the last one of a meter
    holds all its readings: an earlier copy written after it would drop a reading.
    Meters whose total of the day was imported (``metermatrix import``, by another
    process, maybe since the reading was queued) are refused in this same transaction:
    nothing of theirs is written, and their requests learn it from their result.
    """
    latest: dict[date, dict[int, npt.NDArray[np.uint16]]] = {}
    loose: list[Reading] = []
    new_meters: list[int] = []
    for request in requests:
        if request.kind == "rows":
            day, meter_ids, rows, added = request.row
            new_meters.extend(added)
            latest.setdefault(day, {}).update(zip(meter_ids.tolist(), rows, strict=True))
        elif request.kind == "new":
            reading = request.reading
            assert reading is not None
            if request.new_meter:
                new_meters.append(reading.meter_id)
            if request.row is None:
                loose.append(reading)
            else:
                latest.setdefault(reading.day, {})[reading.meter_id] = request.row
    refused = _imported_meters(storage, latest, loose)
    _settle_imported(requests, refused)
    storage.add_meters(new_meters)
    storage.add_readings([r for r in loose if r.meter_id not in refused.get(r.day, ())])
    for day, by_meter in latest.items():
        ids = [m for m in by_meter if m not in refused.get(day, ())]
        if ids:
            storage.put_day_rows(day, ids, np.stack([by_meter[m] for m in ids]))


def _imported_meters(storage: Storage, latest: dict[date, dict[int, Any]],
                     loose: list[Reading]) -> dict[date, set[int]]:
    """{day: meters among the rows and loose readings whose total of day was imported}."""
    candidates: dict[date, set[int]] = {day: set(by_meter) for day, by_meter in latest.items()}
    for reading in loose:
        candidates.setdefault(reading.day, set()).add(reading.meter_id)
    refused = {day: storage.imported_meters(day, sorted(ids))
               for day, ids in candidates.items()}
    return {day: ids for day, ids in refused.items() if ids}


def _settle_imported(requests: list[_Request], refused: dict[date, set[int]]) -> None:
    """Results of today's requests: "stored"/"imported" per reading, refused ids per batch."""
    for request in requests:
        if request.kind == "new":
            reading = request.reading
            assert reading is not None
            request.result = ("imported" if reading.meter_id in refused.get(reading.day, ())
                              else "stored")
        elif request.kind == "rows":
            day, meter_ids, _, _ = request.row
            held = refused.get(day, set())
            request.result = sorted(m for m in meter_ids.tolist() if m in held)


def _store_decided(storage: Storage, requests: list[_Request]) -> None:
    """The readings the database decides ("any" and "many"), in queue order, in one call."""
    decided = [request for request in requests if request.kind in ("any", "many")]
    if not decided:
        return
    readings: list[Reading] = []
    for request in decided:
        readings.extend(request.readings or [] if request.kind == "many"
                        else [request.reading])  # type: ignore[list-item]
    outcomes = storage.store_readings(readings)
    at = 0
    for request in decided:
        count = len(request.readings or []) if request.kind == "many" else 1
        part = outcomes[at:at + count]
        request.result = part if request.kind == "many" else part[0]
        at += count


def _resolve(requests: list[_Request]) -> None:
    """Answer a commit's requests in queue order: replies at once, futures as they resolve
    (their callbacks run after this pass, so every reply of the commit comes first)."""
    for request in requests:
        if request.reply is not None:
            try:
                request.reply(request.result, request.error)
            except Exception:  # noqa: BLE001 - one failed reply must not stop the others
                log.exception("replying to a committed reading failed")
            continue
        future = request.future
        assert future is not None
        if future.done():
            continue
        if request.error is not None:
            future.set_exception(request.error)
        else:
            future.set_result(request.result)
