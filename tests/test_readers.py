"""Reader processes: page work beside the server that yields to it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from metermatrix.readers import READER_NICENESS, Readers
from metermatrix.storage import Storage, open_storage


def niceness(_storage: Storage) -> int:
    """A reader job: the niceness of the process it runs in."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def reader_niceness(data_dir: Path, processes: int) -> int:
    """The niceness a job of ``Readers(data_dir, processes)`` runs at."""
    open_storage(data_dir).close()
    readers = Readers(data_dir, processes=processes)
    try:
        return asyncio.run(readers.run(niceness))
    finally:
        readers.close()


def test_a_reader_process_runs_nicer_than_the_server(tmp_path: Path) -> None:
    server = os.getpriority(os.PRIO_PROCESS, 0)
    reader = reader_niceness(tmp_path, processes=1)
    assert reader == min(19, server + READER_NICENESS)
    assert reader > server or server == 19


def test_a_reader_thread_keeps_the_servers_priority(tmp_path: Path) -> None:
    assert reader_niceness(tmp_path, processes=0) == os.getpriority(os.PRIO_PROCESS, 0)
