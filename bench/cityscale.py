"""City-scale figures of the storage, the start-up and the ingest path.

    python bench/cityscale.py [--meters 100000] [--days 30] [--history-meters 10000]
                              [--history-days 365] [--batches 6]

- bytes on disk per stored reading after ``--history-days`` closed days of
  ``--history-meters`` meters, and after ``--days`` of ``--meters``;
- the day close of ``--meters`` meters on a fresh database and with ``--days`` closed
  days behind it (ratio), and bytes written per acknowledged reading on each;
- the start of a server with today's 48 half hours stored for ``--meters`` meters:
  seconds until /api/v1/status answers and the server's peak memory;
- readings/s through POST /meter/batch against single POST /meter packets in the same
  run (ratio).

Every data folder is made in a temporary folder and deleted at the end. Singapore's
1.4 million meters: ``--meters 1400000`` (about 25 minutes and 10 GB of disk at 30 days).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import RESULTS, start_server, summary_row, write_result  # noqa: E402
from metermatrix.batches import headend_key  # noqa: E402
from metermatrix.signing import load_fleet_key, meter_key, sign_body  # noqa: E402
from metermatrix.storage import SQLiteStorage  # noqa: E402

FIRST_ID = 100_000_000


def fill_days(storage: SQLiteStorage, meters: int, days: int, start: date,
              seed: int = 1) -> list[float]:
    """Store and close ``days`` full days of ``meters`` meters; the close times [s]."""
    ids = list(range(FIRST_ID, FIRST_ID + meters))
    with storage.transaction():
        storage.add_meters(ids)
    rng = np.random.default_rng(seed)
    closes = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for first in range(0, meters, 200_000):
            part = ids[first:first + 200_000]
            values = rng.integers(20, 1500, size=(len(part), 48)).astype(np.uint16)
            with storage.transaction():
                storage.put_day_rows(day, part, values)
        began = time.perf_counter()
        storage.close_day_from_readings(day)
        closes.append(time.perf_counter() - began)
    return closes


def bytes_per_reading(folder: Path, meters: int, days: int) -> dict[str, float]:
    """Whole database file / stored readings after ``days`` closed days."""
    storage = SQLiteStorage(folder / "metermatrix.sqlite3")
    closes = fill_days(storage, meters, days, date(2025, 1, 1))
    storage._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (folder / "metermatrix.sqlite3").stat().st_size
    storage.close()
    return {"meters": meters, "days": days, "bytes_per_reading": size / (meters * days * 48),
            "close_first_s": closes[0], "close_last_s": closes[-1]}


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def bytes_written_per_reading(storage: SQLiteStorage, day: date, meters: int,
                              commits: int = 500) -> float:
    """Bytes written to disk per reading when each commit holds 20 meters' new reading."""
    rng = np.random.default_rng(5)
    before = written_bytes()
    for commit in range(commits):
        part = rng.choice(meters, size=20, replace=False) + FIRST_ID
        values = np.full((20, 48), 0xFFFF, np.uint16)
        values[:, commit % 48] = 400
        with storage.transaction():
            storage.put_day_rows(day, sorted(part.tolist()), values)
    return (written_bytes() - before) / (commits * 20)


def close_with_history(folder: Path, meters: int, days: int) -> dict[str, float]:
    """The close of a day of ``meters`` meters fresh and with ``days`` closed days behind."""
    storage = SQLiteStorage(folder / "metermatrix.sqlite3")
    fresh_written = bytes_written_per_reading(storage, date(2024, 12, 1), meters)
    closes = fill_days(storage, meters, days + 1, date(2025, 1, 1))
    later_written = bytes_written_per_reading(storage, date(2025, 6, 1), meters)
    storage.close()
    return {"meters": meters, "closed_days_behind": days, "close_fresh_s": closes[0],
            "close_with_history_s": closes[-1], "history_ratio": closes[-1] / closes[0],
            "written_per_reading_fresh_b": fresh_written,
            "written_per_reading_history_b": later_written}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_up(folder: Path, meters: int) -> dict[str, float]:
    """Seconds until /api/v1/status answers with today's 48 half hours of ``meters`` stored."""
    data_dir = folder / "data"
    storage = SQLiteStorage(data_dir / "metermatrix.sqlite3")
    today = datetime.now(UTC).date()
    ids = list(range(FIRST_ID, FIRST_ID + meters))
    with storage.transaction():
        storage.add_meters(ids)
    rng = np.random.default_rng(9)
    for first in range(0, meters, 200_000):
        part = ids[first:first + 200_000]
        with storage.transaction():
            storage.put_day_rows(today, part, rng.integers(20, 1500, (len(part), 48)
                                                           ).astype(np.uint16))
    storage.close()
    figures: dict[str, float] = {"meters": meters}
    for run in ("fresh", "with_recovery_file"):
        began = time.perf_counter()
        child = start_server(data_dir, "UTC")
        figures[f"start_{run}_s"] = time.perf_counter() - began
        status = child.get_json("/api/v1/status")
        assert status["readings_today"] == meters * 48, status
        figures[f"peak_rss_{run}_mb"] = peak_rss_mb(child.pid)
        child.stop()  # a clean stop writes the recovery file the second start finds
    return figures


async def ingest(folder: Path, lines_per_batch: int, batches: int) -> dict[str, float]:
    """Readings/s through POST /meter/batch and through single POST /meter packets."""
    data_dir = folder / "ingest"
    child = start_server(data_dir, "UTC")
    fleet = load_fleet_key(data_dir, create=False)
    key = headend_key(fleet, "bench")
    now = datetime.now(UTC)
    today = now.date()
    slots = [s for s in range(48) if datetime.combine(today, datetime.min.time(), UTC)
             + timedelta(minutes=30 * s + 31) <= now] or [0]
    if slots == [0] and now.hour == 0 and now.minute < 31:
        today -= timedelta(days=1)
        slots = list(range(48))
    stamps = [(datetime.combine(today, datetime.min.time(), UTC)
               + timedelta(minutes=30 * s + 31)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in slots]
    per = max(1, lines_per_batch // len(slots))
    http = AsyncHTTPClient(force_instance=True, max_clients=16)
    bulk_lines, bulk_s = 0, 0.0
    for batch in range(batches):
        meters = range(FIRST_ID + batch * per, FIRST_ID + (batch + 1) * per)
        body = "\n".join(f'{{"id": {m}, "timestamp": "{t}", "reading_kWh": 0.{m % 900 + 100}}}'
                         for m in meters for t in stamps).encode()
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        began = time.perf_counter()
        response = await http.fetch(HTTPRequest(
            child.url + "/meter/batch", method="POST", body=body, request_timeout=600,
            headers={"X-Headend": "bench", "X-Headend-Signature": signature}))
        bulk_s += time.perf_counter() - began
        answer = orjson.loads(response.body)
        assert answer["stored"] == per * len(slots), answer
        bulk_lines += answer["stored"]
    single = [(m, stamps[-1]) for m in range(FIRST_ID + 50_000_000,
                                              FIRST_ID + 50_000_000 + 4000)]
    requests = []
    for meter_id, stamp in single:
        body = orjson.dumps({"id": meter_id, "timestamp": stamp, "reading_kWh": 0.5})
        requests.append(HTTPRequest(child.url + "/meter", method="POST", body=body, headers={
            "X-Meter-Signature": sign_body(meter_key(fleet, meter_id), body)}))
    began = time.perf_counter()
    queue = list(requests)

    async def worker() -> None:
        while queue:
            response = await http.fetch(queue.pop(), raise_error=False)
            assert response.code == 201, response.body

    await asyncio.gather(*(worker() for _ in range(16)))
    single_s = time.perf_counter() - began
    http.close()
    child.stop()
    bulk_rate, single_rate = bulk_lines / bulk_s, len(single) / single_s
    return {"bulk_readings": bulk_lines, "bulk_readings_per_s": bulk_rate,
            "single_readings_per_s": single_rate, "bulk_over_single": bulk_rate / single_rate}


def summarise(args: argparse.Namespace, figures: dict[str, Any]) -> list[dict[str, object]]:
    """The rows of the table in bench/README.md, for the parts measured."""
    rows = []
    if "history" in figures:
        history = figures["history"]
        rows.append(summary_row(f"bytes per reading, {history['meters']} meters x "
                                f"{history['days']} d", round(history["bytes_per_reading"], 2),
                                "B", aim=4.0))
    if "month" in figures:
        month = figures["month"]
        rows.append(summary_row(f"bytes per reading, {month['meters']} meters x {month['days']} d",
                                round(month["bytes_per_reading"], 2), "B", aim=4.0))
    if "close" in figures:
        close = figures["close"]
        rows += [summary_row(f"day close, {close['meters']} meters, "
                             f"{close['closed_days_behind']} days behind",
                             round(close["close_with_history_s"], 2), "s"),
                 summary_row("day close with history / fresh", round(close["history_ratio"], 2),
                             "x"),
                 summary_row("bytes written per reading with history",
                             round(close["written_per_reading_history_b"]), "B")]
    if "start" in figures:
        start = figures["start"]
        rows += [summary_row(f"start with today stored, {start['meters']} meters",
                             round(start["start_fresh_s"], 2), "s", aim=15),
                 summary_row("peak memory at that start", round(start["peak_rss_fresh_mb"]),
                             "MB", aim=1536),
                 summary_row("the same start with a recovery file",
                             round(start["start_with_recovery_file_s"], 2), "s", aim=15),
                 summary_row("peak memory at that start",
                             round(start["peak_rss_with_recovery_file_mb"]), "MB", aim=1536)]
    if "ingest" in figures:
        ingested = figures["ingest"]
        rows += [summary_row("bulk readings/s", round(ingested["bulk_readings_per_s"]), "/s",
                             aim=250_000, higher_is_better=True),
                 summary_row("bulk / single packet readings/s",
                             round(ingested["bulk_over_single"], 1), "x", aim=50,
                             higher_is_better=True)]
    return rows


PARTS = ("history", "month", "close", "start", "ingest")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--history-meters", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--batch-lines", type=int, default=240_000)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="measure only these (the others are kept from the last results)")
    args = parser.parse_args()
    calls: dict[str, Callable[[Path], dict[str, float]]] = {
        "history": lambda f: bytes_per_reading(f, args.history_meters, args.history_days),
        "month": lambda f: bytes_per_reading(f, args.meters, args.days),
        "close": lambda f: close_with_history(f, args.meters, args.days),
        "start": lambda f: start_up(f, args.meters),
        "ingest": lambda f: asyncio.run(ingest(f, args.batch_lines, args.batches)),
    }
    previous = RESULTS / "cityscale.json"
    figures: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    figures = {part: figures[part] for part in PARTS if part in figures}
    root = Path(tempfile.mkdtemp(prefix="metermatrix-cityscale-"))
    try:
        for name in args.parts:
            folder = root / name
            folder.mkdir()
            figures[name] = calls[name](folder)
            print(name, figures[name], flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures["summary"] = summarise(args, figures)
    write_result("cityscale", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
