"""``--workers N``: N server processes on one listening socket, sharing PostgreSQL.

The parent binds the port, forks the workers and then only watches them: it forwards
SIGTERM and SIGINT to every worker (each shuts down cleanly), starts a worker again when
one dies of anything else (a kill -9, a crash), and exits when all have stopped. The
kernel hands each new connection to one of the workers, which share the socket.

Each worker has its own writer and today's store. With several workers the database
decides whether a packet is stored, a duplicate or a conflict; a worker's today's store
is a cache of what it has seen. One worker at a time, the holder of a PostgreSQL
advisory lock, runs the day close and the recovery snapshot; when it dies its
connection ends, the lock is free, and another worker takes it within a few seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

from tornado.netutil import bind_sockets

from metermatrix.settings import Settings

log = logging.getLogger(__name__)

#: A worker dying this soon after its start is not restarted again (a broken setup).
MIN_LIFETIME_S = 5.0


def _watch_parent(parent_pid: int) -> None:
    """End this worker when the parent is gone (killed outright, it cannot stop us)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_worker(index: int, sockets: list[socket.socket],
                  serve: Callable[[list[socket.socket], int], None]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        _watch_parent(parent)
        serve(sockets, index)
    except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
        log.exception("worker %d failed", index)
        status = 1
    finally:
        os._exit(status)


def run_workers(settings: Settings, serve: Callable[[list[socket.socket], int], None]) -> None:
    """Bind the port, run ``serve(sockets, index)`` in ``settings.workers`` forked
    processes and keep them running until SIGTERM or SIGINT."""
    sockets = bind_sockets(settings.port, settings.host, reuse_port=True)
    stopping = False
    workers: dict[int, tuple[int, float]] = {}  # pid: (index, started)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(settings.workers):
        workers[_start_worker(index, sockets, serve)] = (index, time.monotonic())
    while workers:
        pid, status = os.wait()
        index, started = workers.pop(pid, (-1, 0.0))
        if stopping or index < 0:
            continue
        log.error("worker %d (pid %d) ended with status %d; starting it again", index, pid,
                  status)
        if time.monotonic() - started < MIN_LIFETIME_S:
            log.error("worker %d died within %.0f s of its start: not restarted", index,
                      MIN_LIFETIME_S)
            continue
        workers[_start_worker(index, sockets, serve)] = (index, time.monotonic())
