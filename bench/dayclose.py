"""Benchmark: day close, today's store memory and the recovery snapshot at city scale.

    python bench/dayclose.py [--days 3] [--meters 100000 1400000] [--live-seconds 60]

- Day close (seed 2.3) of a ``TodayStore`` holding N meters x 48 readings into a real
  SQLite data folder, timed end to end through ``Collector.close_open_day`` on the real
  writer thread, for several successive days (each close then finds the history of the
  days before it). Aims: 100,000 meters under 1 s, 1.4 M meters under 5 s.
- Memory of today's store for 1.4 M meters (tracemalloc), against a dict of dicts of
  floats (the seed's nested format) for 100,000 meters, extrapolated. Aim: under 400 MB.
- The recovery JSON: ``write_snapshot`` of 100,000 and 1.4 M meters (aim under 5 s),
  against the standard json module writing the nested dict of 100,000 meters.
- On a real ``server.py`` restored with 1.4 M meters and snapshotting every few seconds,
  the p99 latency of /meter packets (sent at a fixed rate) during a snapshot against the
  p99 while idle. Aim: under 2x.
Nothing is asserted; the figures go to ``bench/results/dayclose.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    RESULTS,
    child_pids,
    evening_timezone,
    http_request,
    insert_day_rows,
    median,
    open_loop,
    packet_lines,
    percentile,
    sent_slots,
    start_server,
    summary_row,
    write_result,
)
from metermatrix.collector import Collector  # noqa: E402
from metermatrix.fleet import REGIONS  # noqa: E402
from metermatrix.recovery import write_snapshot  # noqa: E402
from metermatrix.slots import SLOTS_PER_DAY  # noqa: E402
from metermatrix.storage import Storage, open_storage  # noqa: E402
from metermatrix.storage.packing import day_number  # noqa: E402
from metermatrix.today import MISSING, TodayStore  # noqa: E402
from metermatrix.writer import ReadingWriter  # noqa: E402

FIRST_METER_ID = 100_000_001
MAX_READING_WH = 50_000
CITY = 1_400_000
AIMS = {"close_100k_s": 1.0, "close_1.4M_s": 5.0, "store_1.4M_mb": 400.0,
        "snapshot_1.4M_s": 5.0, "snapshot_p99_ratio": 2.0}
MB = 1024 * 1024


def meter_ids(meters: int) -> np.ndarray:
    """The benchmark fleet's ids."""
    return np.arange(FIRST_METER_ID, FIRST_METER_ID + meters, dtype=np.int64)


def day_readings(meters: int, seed: int) -> np.ndarray:
    """A day of readings [Wh] for ``meters`` meters; about 0.1 % of slots missing."""
    rng = np.random.default_rng(seed)
    values = rng.integers(20, 1500, (meters, SLOTS_PER_DAY), dtype=np.uint16)
    values[rng.random((meters, SLOTS_PER_DAY)) < 0.001] = MISSING
    return values


def filled_store(meters: int, day: date, seed: int = 1) -> TodayStore:
    """A store grown meter by meter as the server grows it, then filled for the whole day."""
    store = TodayStore(day, MAX_READING_WH)
    for meter_id in meter_ids(meters).tolist():
        store.put(meter_id, 0, 0)
    store.matrix()[:] = day_readings(meters, seed)
    return store


def prepare_database(data_dir: Path, meters: int) -> None:
    """A data folder whose master database knows every meter and its region."""
    open_storage(data_dir).close()
    rows = ((int(meter_id), REGIONS[i % len(REGIONS)], "2025-01-01T00:00:00+00:00")
            for i, meter_id in enumerate(meter_ids(meters).tolist()))
    with sqlite3.connect(data_dir / "metermatrix.sqlite3") as db:
        db.executemany("INSERT INTO meters (meter_id, region, created_at) VALUES (?, ?, ?)", rows)


# -- day close -------------------------------------------------------------------
async def close_days(store: TodayStore, data_dir: Path, days: int) -> list[dict[str, float]]:
    """Close ``days`` successive days through the collector; timings and a totals check."""
    writer = ReadingWriter(lambda: open_storage(data_dir), asyncio.get_running_loop())
    writer.start()
    collector = Collector(store, writer)
    timings = []
    try:
        for index in range(days):
            day = store.day
            ids, values = store.meter_ids().tolist(), store.matrix().copy()
            await writer.run(lambda storage, d=day, i=ids, v=values: _put_rows(storage, d, i, v))
            expected_wh = int(store.totals()[1].sum())
            started = time.perf_counter()
            store.totals()
            totals_s = time.perf_counter() - started
            gc.collect()
            started = time.perf_counter()
            await collector.close_open_day()
            close_s = time.perf_counter() - started
            timings.append({"day": index + 1, "close_s": round(close_s, 3),
                            "totals_s": round(totals_s, 3),
                            "totals_exact": stored_total(data_dir, day) == expected_wh})
            store.matrix()[:] = day_readings(len(store), seed=index + 2)
    finally:
        writer.stop()
    return timings


def _put_rows(storage: Storage, day: date, ids: list[int], values: np.ndarray) -> None:
    """The day's rows as the group commits would have left them (not timed)."""
    with storage.transaction():
        storage.put_day_rows(day, ids, values)


def stored_total(data_dir: Path, day: date) -> int:
    with sqlite3.connect(data_dir / "metermatrix.sqlite3") as db:
        (total,) = db.execute("SELECT SUM(energy_wh) FROM daily_totals WHERE day = ?",
                              (day_number(day),)).fetchone()
    return int(total)


def bench_close(meters: int, days: int, work: Path) -> dict[str, object]:
    data_dir = work / f"close-{meters}"
    prepare_database(data_dir, meters)
    store = filled_store(meters, date(2026, 1, 1))
    timings = asyncio.run(close_days(store, data_dir, days))
    shutil.rmtree(data_dir)
    for timing in timings:
        print(f"  close {meters:>9,} meters, day {timing['day']}: {timing['close_s']:.3f} s "
              f"(totals {timing['totals_s']:.3f} s, exact: {timing['totals_exact']})",
              flush=True)
    return {"meters": meters, "close_s_median": median([t["close_s"] for t in timings]),
            "close_s_max": max(t["close_s"] for t in timings), "days": timings}


def bench_history(meters: int, history_days: int, work: Path) -> dict[str, object]:
    """Close one day of ``meters`` meters when ``history_days`` days are already closed."""
    data_dir = work / f"history-{meters}"
    prepare_database(data_dir, meters)
    first = date(2026, 1, 1)
    with sqlite3.connect(data_dir / "metermatrix.sqlite3") as db:
        for index in tqdm(range(history_days), desc="history", unit="day", disable=None):
            db.execute("INSERT INTO daily_totals (day, meter_id, energy_wh, readings)"
                       " SELECT ?, meter_id, abs(random()) % 30000, 48 FROM meters"
                       " ORDER BY meter_id", (day_number(first + timedelta(days=index)),))
            db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store = filled_store(meters, first + timedelta(days=history_days))
    timing = asyncio.run(close_days(store, data_dir, 1))[0]
    shutil.rmtree(data_dir)  # a year at 1.4 M meters is some 10 GB
    figures: dict[str, object] = {"meters": meters, "history_days": history_days, **timing}
    print(f"  close {meters:,} meters after {history_days} days of history: {figures}", flush=True)
    return figures


# -- memory ----------------------------------------------------------------------
def store_memory(meters: int) -> dict[str, float]:
    """Bytes held by today's store once ``meters`` meters have a row, and the peak on the way.

    The store grows as the server's does (doubling); filling the readings in is in place.
    """
    gc.collect()
    tracemalloc.start()
    store = TodayStore(date(2026, 1, 1), MAX_READING_WH)
    for meter_id in meter_ids(meters).tolist():
        store.put(meter_id, 0, 0)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del store
    return {"meters": meters, "store_mb": round(current / MB, 1),
            "peak_while_growing_mb": round(peak / MB, 1),
            "matrix_only_mb": round(meters * SLOTS_PER_DAY * 2 / MB, 1)}


def nested_memory(meters: int) -> float:
    """MB held by the seed's dict of dicts of float kWh for ``meters`` meters."""
    values = day_readings(meters, seed=1)
    from metermatrix.slots import SLOT_LABELS

    gc.collect()
    tracemalloc.start()
    nested = {str(meter_id): {label: wh / 1000 for label, wh in zip(SLOT_LABELS, row, strict=True)}
              for meter_id, row in zip(meter_ids(meters).tolist(), values.tolist(), strict=True)}
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del nested
    return current / MB


# -- recovery snapshot -----------------------------------------------------------
def timed(action: Callable[[], object]) -> float:
    """Seconds ``action()`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def write_bytes_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (what the baselines pay for durability)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def bench_snapshot(store: TodayStore, work: Path, baselines: bool) -> dict[str, float]:
    """write_snapshot of ``store``; the baselines serialise the seed's nested dict of it."""
    path = work / f"recovery-{len(store)}.json"
    figures = {"meters": len(store),
               "write_snapshot_s": round(timed(lambda: write_snapshot(store, path)), 3),
               "file_mb": round(path.stat().st_size / MB, 1)}
    if baselines:  # the dict of dicts is built first, untimed, as the seed keeps it in memory
        nested = store.to_nested()
        figures["json_module_s"] = round(timed(lambda: write_bytes_synced(
            path, json.dumps(nested).encode())), 3)
        figures["orjson_nested_s"] = round(timed(lambda: write_bytes_synced(
            path, orjson.dumps(nested))), 3)
    path.unlink()
    print(f"  snapshot {len(store):>9,} meters: {figures}", flush=True)
    return figures


# -- /meter latency during snapshots on a live server ------------------------------
def prefill_live(data_dir: Path, day: date, meters: int) -> None:
    """A data folder with ``meters`` meters that each sent slot 0 of ``day``."""
    prepare_database(data_dir, meters)
    ids = meter_ids(meters).tolist()
    with sqlite3.connect(data_dir / "metermatrix.sqlite3") as db:
        insert_day_rows(db, ids, day, np.full((len(ids), 1), 300))
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the server starts with an empty WAL


class ChildWatch(threading.Thread):
    """Records when the server has a forked child (a snapshot being written)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.spans: list[tuple[float, float]] = []

    def run(self) -> None:
        started: float | None = None
        while not self.stop.is_set():
            busy = bool(child_pids(self.pid))
            now = time.monotonic()
            if busy and started is None:
                started = now
            elif not busy and started is not None:
                self.spans.append((started, now))
                started = None
            time.sleep(0.002)


def classify(results: list[tuple[float, float, int]], spans: list[tuple[float, float]],
             margin_s: float = 0.5, warm_up_s: float = 5) -> tuple[list[float], list[float]]:
    """Latencies [ms] of requests sent during a snapshot, and of those well away from any."""
    during, idle = [], []
    begin = results[0][0] + warm_up_s
    for scheduled, latency, _ in results:
        if scheduled < begin:
            continue
        if any(start <= scheduled <= end for start, end in spans):
            during.append(latency * 1000)
        elif all(scheduled + latency < start - margin_s or scheduled > end + margin_s
                 for start, end in spans):
            idle.append(latency * 1000)
    return during, idle


def bench_live(work: Path, meters: int, seconds: int, rate_per_s: float,
               snapshot_hours: float) -> dict[str, object]:
    fleet_key = secrets.token_bytes(32)
    tz_name = evening_timezone()
    day, slots = sent_slots(ZoneInfo(tz_name))
    data_dir = work / "live"
    prefill_live(data_dir, day, meters)
    count = int(seconds * rate_per_s)
    step = max(meters // count, 1)
    live_ids = meter_ids(meters)[::step][:count].tolist()
    requests = [http_request(line) for line in
                packet_lines(fleet_key, live_ids, day, [slots[-1]], ZoneInfo(tz_name))]
    started = time.perf_counter()
    server = start_server(data_dir, tz_name, ["--snapshot-hours", str(snapshot_hours)],
                          env={"METERMATRIX_FLEET_KEY": fleet_key.hex()})
    start_s = time.perf_counter() - started
    watch = ChildWatch(server.pid)
    watch.start()
    try:
        results = asyncio.run(open_loop(server.port, requests, rate_per_s))
    finally:
        watch.stop.set()
        watch.join()
        server.stop()
    return live_figures(results, watch.spans, meters, rate_per_s, start_s)


def live_figures(results: list[tuple[float, float, int]], spans: list[tuple[float, float]],
                 meters: int, rate_per_s: float, start_s: float) -> dict[str, object]:
    during, idle = classify(results, spans)
    p99_during, p99_idle = percentile(during, 99), percentile(idle, 99)
    figures: dict[str, object] = {
        "meters": meters, "rate_per_s": rate_per_s, "server_start_s": round(start_s, 1),
        "snapshots": len(spans),
        "snapshot_in_server_s": round(median([end - start for start, end in spans]), 3)
        if spans else None,
        "requests_during": len(during), "requests_idle": len(idle),
        "p50_idle_ms": round(percentile(idle, 50), 2),
        "p50_during_ms": round(percentile(during, 50), 2),
        "p99_idle_ms": round(p99_idle, 2), "p99_during_ms": round(p99_during, 2),
        "p99_ratio": round(p99_during / p99_idle, 2),
        "not_stored": sum(1 for _, _, status in results if status != 201),
    }
    print(f"  live server, {meters:,} meters, {rate_per_s:.0f} packets/s: {figures}", flush=True)
    return figures


# -- main ------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="successive days closed per size")
    parser.add_argument("--meters", type=int, nargs="+", default=[100_000, CITY])
    parser.add_argument("--live-seconds", type=int, default=60)
    parser.add_argument("--live-rate", type=float, default=500,
                        help="packets/s sent during the live test")
    parser.add_argument("--live-snapshot-hours", type=float, default=0.005,
                        help="the live server's --snapshot-hours (0.005 h = 18 s)")
    parser.add_argument("--history-days", type=int, default=30,
                        help="days of daily totals already stored for the 'history' close")
    parser.add_argument("--history-meters", type=int, default=100_000,
                        help="meters of the 'history' close")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS),
                        help="measure only these (the others are kept from the last results)")
    return parser.parse_args()


def part_memory(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Today's store for 1.4 M meters, and the dict of dicts it replaces."""
    memory = store_memory(CITY)
    nested_mb = nested_memory(100_000)
    memory["dict_of_dicts_100k_mb"] = round(nested_mb, 1)
    memory["dict_of_dicts_1.4M_mb_extrapolated"] = round(nested_mb * CITY / 100_000, 1)
    print(f"  {memory}", flush=True)
    return memory


PARTS: dict[str, Callable[[argparse.Namespace, Path], object]] = {
    "memory": part_memory,
    "close": lambda args, work: [bench_close(meters, args.days, work) for meters in args.meters],
    "history": lambda args, work: bench_history(args.history_meters, args.history_days, work),
    "snapshot": lambda args, work: [
        bench_snapshot(filled_store(meters, date(2026, 1, 1)), work, baselines=meters <= 100_000)
        for meters in args.meters],
    "live": lambda args, work: bench_live(work, max(args.meters), args.live_seconds,
                                          args.live_rate, args.live_snapshot_hours),
}


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    previous = RESULTS / "dayclose.json"
    figures: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    figures = {part: figures[part] for part in PARTS if part in figures}
    for part in args.parts:
        print(part, flush=True)
        figures[part] = PARTS[part](args, work)
    figures["setup"] = vars(args)
    figures["aims"] = AIMS
    return {"summary": summarise(figures), **figures}


def summarise(figures: dict[str, Any]) -> list[dict[str, object]]:
    """The rows of the table in bench/README.md."""
    rows: list[dict[str, object]] = []
    for close in figures.get("close", []):
        meters = close["meters"]
        aim = {100_000: AIMS["close_100k_s"], CITY: AIMS["close_1.4M_s"]}.get(meters)
        rows.append(summary_row(f"day close, {meters:,} meters x 48 (median of "
                                f"{len(close['days'])} days)", close["close_s_median"], "s", aim))
    history = figures.get("history")
    if history:
        rows.append(summary_row(f"day close, {history['meters']:,} meters, after "
                                f"{history['history_days']} closed days", history["close_s"], "s",
                                {100_000: AIMS["close_100k_s"],
                                 CITY: AIMS["close_1.4M_s"]}.get(history["meters"])))
    memory = figures.get("memory")
    if memory:
        rows.append(summary_row(f"today's store, {memory['meters']:,} meters", memory["store_mb"],
                                "MB", AIMS["store_1.4M_mb"]))
        rows.append(summary_row("dict of dicts of floats, 1,400,000 meters (from 100,000)",
                                memory["dict_of_dicts_1.4M_mb_extrapolated"], "MB"))
    for snapshot in figures.get("snapshot", []):
        meters = snapshot["meters"]
        aim = AIMS["snapshot_1.4M_s"] if meters == CITY else None
        rows.append(summary_row(f"recovery snapshot, {meters:,} meters",
                                snapshot["write_snapshot_s"], "s", aim))
        if "json_module_s" in snapshot:
            rows.append(summary_row(f"the nested dict, {meters:,} meters: json module / orjson",
                                    f"{snapshot['json_module_s']:.2f} / "
                                    f"{snapshot['orjson_nested_s']:.2f}", "s"))
    live = figures.get("live")
    if not live:
        return rows
    rows.append(summary_row(f"/meter p99 idle / during a snapshot, {live['meters']:,} meters, "
                            f"{live['rate_per_s']:.0f} packets/s",
                            f"{live['p99_idle_ms']:.1f} / {live['p99_during_ms']:.1f}", "ms"))
    rows.append(summary_row("p99 during a snapshot / idle", live["p99_ratio"], "",
                            AIMS["snapshot_p99_ratio"]))
    return rows


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="metermatrix-bench-") as work:
        figures = run(args, Path(work))
    path = write_result("dayclose", figures)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
