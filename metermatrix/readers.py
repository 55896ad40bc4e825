"""Slow reads off the server's event loop: reader processes with their own connections.

A resident's page takes tens of milliseconds of pandas and matplotlib; done in the server
process it would hold the interpreter while meters wait. Reader processes run those jobs
beside the server (another core) and share nothing with it but the database, which they
only read, and the arguments of each job, which are pickled: a job is a module-level
function called as ``function(storage, *args)``. With ``processes=0`` the jobs run on a
thread of the server instead (for machines with one core). Reader processes run at a
lower scheduling priority (``READER_NICENESS``): when pages and meters want the same
core, the meters' acknowledgements come first.

Each reader process keeps its own region-average cache (``averages``), so one
computation of a region's average meter serves every resident of the region.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from metermatrix.periods import Period
from metermatrix.queries import MeterConsumption, RegionAverageCache, meter_consumption
from metermatrix.storage import Storage, open_storage
from metermatrix.today import OpenDaySums

log = logging.getLogger(__name__)

T = TypeVar("T")

_local = threading.local()  # this process's (or reader thread's) connection
#: The region averages shared by the jobs of this process.
averages = RegionAverageCache()
#: How much nicer than the server a reader process runs (``os.nice``).
READER_NICENESS = 10


def _open(data_dir: Path, database: str = "") -> None:
    _local.storage = open_storage(data_dir, database=database)


def _open_in_process(data_dir: Path, server_pid: int, database: str = "") -> None:
    """A reader process's start: its connection, and an end when the server ends.

    A server killed outright (kill -9) cannot stop its readers; each one watches its
    parent and exits once it is gone.
    """
    os.nice(READER_NICENESS)
    _open(data_dir, database)

    def watch_parent() -> None:
        while os.getppid() == server_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()


def _call(function: Callable[..., T], args: tuple[Any, ...]) -> T:
    return function(_local.storage, *args)


def _close() -> None:
    storage = getattr(_local, "storage", None)
    if storage is not None:
        storage.close()
        _local.storage = None


def _ready(_: Storage) -> bool:
    return True


class Readers:
    """A pool of reader processes (or one reader thread) over a data folder's database."""

    def __init__(self, data_dir: Path, processes: int = 1, database: str = "") -> None:
        self.processes = processes
        self._executor: Executor
        if processes > 0:
            self._executor = ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_open_in_process, initargs=(data_dir, os.getpid(), database))
        else:
            self._executor = ThreadPoolExecutor(1, "reader", initializer=_open,
                                                initargs=(data_dir, database))

    def warm_up(self) -> None:
        """Start the readers now (imports take a second), so the first page need not wait."""
        self._executor.submit(_call, _ready, ())

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(storage, *args)`` on a reader; ``function`` must be module-level."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _call, function, args)

    def close(self) -> None:
        """Stop the readers (each closes its connection)."""
        if self.processes == 0:
            self._executor.submit(_close)
        self._executor.shutdown(wait=True, cancel_futures=True)


def consumption(storage: Storage, meter_id: int, region: str | None, period: Period,
                now: datetime, today: OpenDaySums | None) -> MeterConsumption:
    """``meter_consumption`` with this process's shared region averages (a reader job)."""
    return meter_consumption(storage, meter_id, region, period, now, averages, today)
