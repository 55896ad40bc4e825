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


def test_a_reader_process_runs_nicer_than_the_server(tmp_path: Path) -> None:
    open_storage(tmp_path).close()
    readers = Readers(tmp_path, processes=1)
    try:
        reader = asyncio.run(readers.run(niceness))
    finally:
        readers.close()
    server = os.getpriority(os.PRIO_PROCESS, 0)
    assert reader == min(19, server + READER_NICENESS)
    assert reader > server or server == 19


def test_a_reader_thread_keeps_the_servers_priority(tmp_path: Path) -> None:
    open_storage(tmp_path).close()
    readers = Readers(tmp_path, processes=0)
    try:
        reader = asyncio.run(readers.run(niceness))
    finally:
        readers.close()
    assert reader == os.getpriority(os.PRIO_PROCESS, 0)
