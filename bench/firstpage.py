"""The residents' first page of a period and /meter latency, with a city's day in memory.

    python bench/firstpage.py [--meters 100000] [--days 30] [--residents 20] [--packets 2000]

Builds a master database of ``--meters`` meters over the five regions with ``--days``
closed days of half-hourly readings and today's half hours so far (the last due one left
for the meters to send), starts the real ``server.py`` on it and measures:

- the start until /api/v1/status answers, and the server's peak memory;
- /api/v1/status: median and 99th percentile over sequential requests;
- the first consumption page of each period for a resident of each region (nothing of
  that region and period cached yet): the slowest and the median;
- /meter latency of single packets, idle and while ``--residents`` logged-in residents
  load pages of different periods in a loop (from a forked client process at
  ``--client-nice``, 10): p50 and p99, and the ratio loaded / idle.

Aims (city-scale issue): first page under 100 ms at 1.4 M meters, /meter p99 while the
residents load pages within 2x of idle, status under 5 ms. Singapore: ``--meters 1400000``
(the data folder, about 5 GB at 30 days, is deleted at the end). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import (  # noqa: E402
    evening_timezone,
    median,
    percentile,
    send_time,
    sent_slots,
    start_server,
    summary_row,
    write_result,
)
from bench.cityscale import peak_rss_mb  # noqa: E402
from bench.consumption import PASSWORD, Client  # noqa: E402
from metermatrix.accounts import hash_password  # noqa: E402
from metermatrix.fleet import REGIONS  # noqa: E402
from metermatrix.periods import RESIDENT_PERIODS  # noqa: E402
from metermatrix.signing import load_fleet_key, meter_key, sign_body  # noqa: E402
from metermatrix.storage import SQLiteStorage  # noqa: E402
from metermatrix.storage.packing import MISSING  # noqa: E402

FIRST_ID = 100_000_000
CHUNK = 200_000


def build(data_dir: Path, meters: int, days: int, tz: ZoneInfo, residents: int
          ) -> tuple[list[int], date, int]:
    """Fill ``data_dir``; the residents' meters, today and its last due slot (left empty)."""
    storage = SQLiteStorage(data_dir / "metermatrix.sqlite3")
    ids = list(range(FIRST_ID, FIRST_ID + meters))
    with storage.transaction():
        storage.add_meters(ids)
        cases = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(REGIONS))
        storage._db.execute(f"UPDATE meters SET region = CASE meter_id % {len(REGIONS)} "
                            f"{cases} END")
        people = ids[:residents]
        for meter_id in people:
            storage.add_resident(meter_id, hash_password(PASSWORD))
    today, sent = sent_slots(tz)
    rng = np.random.default_rng(3)
    for back in range(days, -1, -1):
        day = today - timedelta(days=back)
        for first in range(0, meters, CHUNK):
            part = ids[first:first + CHUNK]
            values = rng.integers(20, 1500, (len(part), 48)).astype(np.uint16)
            if back == 0:
                values[:, sent[-1]:] = MISSING
            with storage.transaction():
                storage.put_day_rows(day, part, values)
        if back:
            storage.close_day_from_readings(day)
    storage.close()
    return people, today, sent[-1]


class Resident(Client):
    """A keep-alive HTTP client logged in as one resident."""

    def __init__(self, port: int, meter_id: int) -> None:
        super().__init__(port)
        self.meter_id = meter_id
        self.login(meter_id)

    def get(self, path: str) -> int:
        return self.request("GET", path)[0]

    def page_ms(self, period: str) -> float:
        """Wall time [ms] of one consumption page of ``period``."""
        began = time.perf_counter()
        status = self.get(f"/profile/{self.meter_id}/consumption?period={period}")
        if status != 200:
            raise RuntimeError(f"period {period} answered {status}")
        return (time.perf_counter() - began) * 1000


def first_pages(port: int, people: list[int]) -> dict[str, float]:
    """The first page of each period for a resident of each region [ms] (nothing cached)."""
    times: dict[str, float] = {}
    for region_index, meter_id in enumerate(people[: len(REGIONS)]):
        resident = Resident(port, meter_id)
        for period in RESIDENT_PERIODS:
            times[f"{REGIONS[region_index]}/{period}"] = resident.page_ms(period)
    return times


def status_ms(port: int, requests: int = 300) -> list[float]:
    """Wall times [ms] of sequential /api/v1/status requests."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        connection.request("GET", "/api/v1/status")
        connection.getresponse().read()
        times.append((time.perf_counter() - began) * 1000)
    return times


def post_packets(port: int, packets: list[tuple[bytes, bytes]], pause_s: float) -> list[float]:
    """Post ``packets`` one after another, ``pause_s`` apart; each one's latency [ms]."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    times = []
    for signature, body in packets:
        began = time.perf_counter()
        connection.request("POST", "/meter", body=body, headers={
            "X-Meter-Signature": signature.decode(), "Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        times.append((time.perf_counter() - began) * 1000)
        if response.status != 201:
            raise RuntimeError(f"/meter answered {response.status}")
        time.sleep(pause_s)
    return times


def packets_for(data_dir: Path, meter_ids: range, day: date, slot: int, tz: ZoneInfo
                ) -> list[tuple[bytes, bytes]]:
    """Signed packets of ``slot`` for each meter."""
    fleet = load_fleet_key(data_dir, create=False)
    stamp = send_time(day, slot, tz).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    packets = []
    for meter_id in meter_ids:
        body = orjson.dumps({"id": meter_id, "timestamp": stamp, "reading_kWh": 0.4})
        packets.append((sign_body(meter_key(fleet, meter_id), body).encode(), body))
    return packets


def browse(port: int, people: list[int], nice: int, stop: Any, pages: Any) -> None:
    """A client process: each resident loads pages of different periods until ``stop``."""
    os.nice(nice)
    residents = [Resident(port, meter_id) for meter_id in people]
    done = threading.Event()
    times: list[float] = []

    def loop(index: int, resident: Resident) -> None:
        turn = index
        while not done.is_set():
            times.append(resident.page_ms(RESIDENT_PERIODS[turn % len(RESIDENT_PERIODS)]))
            turn += 1

    threads = [threading.Thread(target=loop, args=(i, r), daemon=True)
               for i, r in enumerate(residents)]
    for thread in threads:
        thread.start()
    stop.wait()
    done.set()
    for thread in threads:
        thread.join()
    pages.put(times)


def under_load(port: int, people: list[int], packets: list[tuple[bytes, bytes]],
               pause_s: float, client_nice: int) -> tuple[list[float], list[float]]:
    """/meter latencies [ms] while the residents load pages; and their page times [ms].

    The residents browse from a forked process at ``client_nice``: their clients would
    run on other machines, and in this process they would hold the interpreter while a
    packet's answer waits to be read, adding their time to the packet's latency.
    """
    context = multiprocessing.get_context("fork")
    stop, pages = context.Event(), context.Queue()
    child = context.Process(target=browse, args=(port, people, client_nice, stop, pages),
                            daemon=True)
    child.start()
    try:
        time.sleep(2.0)  # every resident logged in and loading
        latencies = post_packets(port, packets, pause_s)
    finally:
        stop.set()
    times: list[float] = pages.get(timeout=600)
    child.join()
    return latencies, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--residents", type=int, default=20)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--pause-ms", type=float, default=5.0)
    parser.add_argument("--client-nice", type=int, default=10,
                        help="niceness of the residents' client process")
    args = parser.parse_args()
    timezone = evening_timezone()
    tz = ZoneInfo(timezone)
    root = Path(tempfile.mkdtemp(prefix="metermatrix-firstpage-"))
    try:
        data_dir = root / "data"
        began = time.perf_counter()
        people, today, slot = build(data_dir, args.meters, args.days, tz, args.residents)
        build_s = time.perf_counter() - began
        print(f"built in {build_s:.0f} s", flush=True)
        began = time.perf_counter()
        child = start_server(data_dir, timezone)
        start_s = time.perf_counter() - began
        try:
            Resident(child.port, people[-1]).get(f"/profile/{people[-1]}")  # readers up
            status = status_ms(child.port)
            first = first_pages(child.port, people)
            pause = args.pause_ms / 1000
            post_packets(child.port, packets_for(  # warm-up, not measured
                data_dir, range(FIRST_ID + 2 * args.packets, FIRST_ID + 2 * args.packets + 50),
                today, slot, tz), pause)
            idle = post_packets(child.port, packets_for(
                data_dir, range(FIRST_ID, FIRST_ID + args.packets), today, slot, tz), pause)
            loaded, pages = under_load(child.port, people, packets_for(
                data_dir, range(FIRST_ID + args.packets, FIRST_ID + 2 * args.packets),
                today, slot, tz), pause, args.client_nice)
            peak_mb = peak_rss_mb(child.pid)
        finally:
            child.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    p99_ratio = percentile(loaded, 99) / percentile(idle, 99)
    figures: dict[str, object] = {
        "meters": args.meters, "closed_days": args.days, "timezone": timezone,
        "build_s": build_s, "start_s": start_s, "peak_rss_mb": peak_mb,
        "status_ms": {"p50": median(status), "p99": percentile(status, 99)},
        "first_page_ms": first,
        "meter_idle_ms": {"p50": median(idle), "p99": percentile(idle, 99)},
        "meter_loaded_ms": {"p50": median(loaded), "p99": percentile(loaded, 99)},
        "pages_while_loaded": {"count": len(pages), "p50_ms": median(pages)},
        "client_nice": args.client_nice,
        "summary": [
            summary_row(f"first consumption page, slowest of 5 regions x 5 periods, "
                        f"{args.meters} meters", round(max(first.values()), 1), "ms",
                        aim=100),
            summary_row("first consumption page, median", round(median(list(first.values())),
                                                                1), "ms", aim=100),
            summary_row("/meter p99 with residents loading pages / idle",
                        round(p99_ratio, 2), "x", aim=2.0),
            summary_row("/meter p50 with residents loading pages / idle",
                        round(median(loaded) / median(idle), 2), "x"),
            summary_row("/api/v1/status p50", round(median(status), 2), "ms", aim=5),
            summary_row(f"start with today stored, {args.meters} meters, {args.days} "
                        "days closed", round(start_s, 2), "s"),
        ],
    }
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    write_result("firstpage", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
