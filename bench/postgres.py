"""Benchmark: the PostgreSQL backend, on a throwaway cluster on this machine.

    python bench/postgres.py [--meters 100000] [--seconds 8] [--connections 32]

Figures: bulk readings/s written into PostgreSQL (one open day's rows of ``--meters``
meters through ``put_day_rows``: COPY and one merge), the same into SQLite for
comparison, and single-packet POST /meter throughput of the real server on PostgreSQL
with ``--workers 2`` against ``--workers 1`` (aim 1.4x). The load comes from
``--client-processes`` forked asyncio clients (2) at a lower priority (``--client-nice``,
10), or with ``--client-processes 0`` from an asyncio client in this process at the
server's priority (1.29x where the processes give 1.47x: the client took its share of
the two cores from the second worker). Either takes CPU from the same two cores, so the
request rates are lower than wrk's; the ratio is the figure. ``--profile DIR`` records
each server's processes with py-spy during the first round. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    evening_timezone,
    median,
    packet_lines,
    py_spy_record,
    sent_slots,
    start_server,
    summary_row,
    write_result,
)
from metermatrix.slots import SLOTS_PER_DAY  # noqa: E402
from metermatrix.storage import SQLiteStorage, Storage  # noqa: E402
from metermatrix.storage.postgres import PostgresStorage  # noqa: E402
from tests.pg import Cluster, find_bin_dir  # noqa: E402

AIM_WORKERS_RATIO = 1.4
AIM_BULK_PER_S = 150_000


def bulk_rate(storage: Storage, meters: int) -> float:
    """Readings/s of one put_day_rows of ``meters`` full rows (48 readings each)."""
    day = datetime.now(UTC).date()
    storage.prepare_days(day)
    ids = list(range(1, meters + 1))
    rows = np.random.default_rng(1).integers(0, 2000, (meters, SLOTS_PER_DAY), np.uint16)
    started = time.perf_counter()
    with storage.transaction():
        storage.add_meters(ids)
        storage.put_day_rows(day, ids, rows)
    return meters * SLOTS_PER_DAY / (time.perf_counter() - started)


async def _post_all(port: int, lines: list[bytes], connections: int, seconds: float) -> int:
    """POST packets on ``connections`` keep-alive connections for ``seconds``; answers."""
    queue = iter(lines)
    answered = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for line in queue:
            if time.monotonic() > deadline:
                break
            signature, body = line.split(b" ", 1)
            writer.write(b"POST /meter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         b"\r\nX-Meter-Signature: " + signature + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            answered += head.startswith(b"HTTP/1.1 201")
        writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return answered


def _client_process(port: int, lines: list[bytes], connections: int, seconds: float,
                    nice: int, answers: Any) -> None:
    """One load process: ``_post_all`` at a lower priority, its count put on ``answers``."""
    os.nice(nice)
    answers.put(asyncio.run(_post_all(port, lines, connections, seconds)))


def post_load(port: int, lines: list[bytes], args: argparse.Namespace, seconds: float) -> int:
    """Stored packets of ``seconds`` of load: from this process (``--client-processes
    0``) or from that many forked processes at ``--client-nice``, each with its share of
    the connections and packets."""
    processes = args.client_processes
    if not processes:
        return asyncio.run(_post_all(port, lines, args.connections, seconds))
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    children = [context.Process(target=_client_process, args=(
        port, lines[index::processes], max(1, args.connections // processes), seconds,
        args.client_nice, answers)) for index in range(processes)]
    for child in children:
        child.start()
    stored = sum(answers.get(timeout=seconds + 60) for _ in children)
    for child in children:
        child.join()
    return int(stored)


def profile(pid: int, args: argparse.Namespace, workers: int) -> subprocess.Popen[bytes] | None:
    """py-spy recording the server's processes (``--profile``) for the measured seconds:
    collapsed stacks in ``<folder>/workers-<N>.txt``."""
    if args.profile is None:
        return None
    return py_spy_record(pid, args.seconds, args.profile / f"workers-{workers}.txt")


def packet_rate(cluster: Cluster, work: Path, workers: int, args: argparse.Namespace,
                round_index: int) -> float:
    """Stored packets/s of a server with ``workers`` processes on a fresh database."""
    fleet_key = secrets.token_bytes(32)
    tz_name = evening_timezone()
    tz = ZoneInfo(tz_name)
    day, slots = sent_slots(tz)
    meter_ids = list(range(400_000_001, 400_000_001 + 3000))
    lines = packet_lines(fleet_key, meter_ids, day, slots, tz)
    data = work / f"data-{workers}-{round_index}"
    server = start_server(data, tz_name, ["--database", cluster.create_database(),
                                          "--workers", str(workers), "--reader-processes", "0"],
                          env={"METERMATRIX_FLEET_KEY": fleet_key.hex()})
    try:
        post_load(server.port, lines[:2000], args, 2)  # warm-up
        spy = profile(server.pid, args, workers) if round_index == 0 else None
        stored = post_load(server.port, lines[2000:], args, args.seconds)
        if spy is not None:
            spy.wait()
    finally:
        server.stop()
    return stored / args.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client-processes", type=int, default=2,
                        help="load from this many processes (0: an asyncio client in this one)")
    parser.add_argument("--client-nice", type=int, default=10,
                        help="niceness of the load processes (below the server's priority)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the --workers 2 server with py-spy into this folder")
    args = parser.parse_args()
    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("no PostgreSQL binaries: skipped")
        return
    cluster = Cluster(bin_dir).start()
    try:
        with tempfile.TemporaryDirectory(prefix="metermatrix-bench-") as folder:
            work = Path(folder)
            pg = PostgresStorage(cluster.create_database())
            pg_bulk = bulk_rate(pg, args.meters)
            pg.close()
            lite = SQLiteStorage(work / "bulk.sqlite3")
            lite_bulk = bulk_rate(lite, args.meters)
            lite.close()
            print(f"bulk: PostgreSQL {pg_bulk:,.0f} readings/s, SQLite {lite_bulk:,.0f}",
                  flush=True)
            rates: dict[int, list[float]] = {1: [], 2: []}
            for index in range(args.rounds):
                for workers in (1, 2) if index % 2 == 0 else (2, 1):
                    rates[workers].append(packet_rate(cluster, work, workers, args, index))
                    print(f"round {index + 1}, --workers {workers}: "
                          f"{rates[workers][-1]:.0f} packets/s", flush=True)
    finally:
        cluster.stop()
    one, two = median(rates[1]), median(rates[2])
    figures = {
        "summary": [
            summary_row("bulk readings/s into PostgreSQL", round(pg_bulk), "readings/s",
                        AIM_BULK_PER_S, higher_is_better=True),
            summary_row("bulk readings/s into SQLite (same rows)", round(lite_bulk),
                        "readings/s"),
            summary_row("/meter on PostgreSQL, --workers 1", round(one), "packets/s"),
            summary_row("/meter on PostgreSQL, --workers 2", round(two), "packets/s"),
            summary_row("ratio --workers 2 / 1", round(two / one, 2), "", AIM_WORKERS_RATIO,
                        higher_is_better=True),
        ],
        "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rates": rates,
    }
    path = write_result("postgres", figures)
    print(f"--workers 2 / 1: {two / one:.2f} ({two:.0f} / {one:.0f} packets/s); {path}")


if __name__ == "__main__":
    main()
