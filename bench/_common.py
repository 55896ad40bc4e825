"""Shared pieces of the benchmarks: servers in child processes, signed packets, wrk, results.

Nothing here asserts a timing: the benchmarks measure and write ``bench/results/<name>.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import tornado

from metermatrix.signing import meter_key, sign_body
from metermatrix.slots import SLOTS_PER_DAY, interval_start

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WRK = "/usr/bin/wrk"
#: Local hour the benchmark servers find themselves in (see ``evening_timezone``).
EVENING_HOUR = 21


def machine_info() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "tornado": tornado.version,
        "sqlite": sqlite3.sqlite_version,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_result(name: str, figures: dict[str, object]) -> Path:
    """Write ``bench/results/<name>.json`` with the figures and the machine info."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "machine": machine_info(), **figures}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def summary_row(figure: str, value: float | str, unit: str = "", aim: float | None = None,
                higher_is_better: bool = False) -> dict[str, object]:
    """One row of a result's ``summary`` (the table in bench/README.md), checked against its aim."""
    row: dict[str, object] = {"figure": figure, "value": value, "unit": unit}
    if aim is not None and isinstance(value, int | float):
        row["aim"] = aim
        row["aim_op"] = ">= " if higher_is_better else "< "
        row["met"] = bool(value >= aim if higher_is_better else value < aim)
    return row


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far [s]."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (e.g. a forked snapshot writer)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def evening_timezone(now: datetime | None = None) -> str:
    """A whole-hour time zone in which it is now about 21:00, so most of the day is sent.

    Packets can then fill ~41 distinct slots of the open day, and the 23:45 close is
    hours away: the benchmark never straddles a day close.
    """
    now = now or datetime.now(UTC)
    offset = EVENING_HOUR - now.hour
    if offset > 14:
        offset -= 24
    # POSIX sign convention: Etc/GMT-10 is UTC+10.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def sent_slots(tz: ZoneInfo, now: datetime | None = None) -> tuple[date, list[int]]:
    """The local day at ``now`` and its slots whose packets have been sent by then."""
    now = now or datetime.now(UTC)
    day = now.astimezone(tz).date()
    slots = [slot for slot in range(SLOTS_PER_DAY)
             if send_time(day, slot, tz) <= now - timedelta(seconds=5)]
    return day, slots


def send_time(day: date, slot: int, tz: ZoneInfo) -> datetime:
    """When a meter sends the packet of ``slot`` of local ``day`` (hh:01 / hh:31)."""
    return interval_start(day, slot, tz) + timedelta(minutes=31)


def packet_lines(fleet_key: bytes, meter_ids: Sequence[int], day: date, slots: Sequence[int],
                 tz: ZoneInfo, seed: int = 1) -> list[bytes]:
    """``<signature> <body>`` lines: every meter's packet of each slot, slot by slot."""
    rng = np.random.default_rng(seed)
    keys = {meter_id: meter_key(fleet_key, meter_id) for meter_id in meter_ids}
    lines: list[bytes] = []
    for slot in slots:
        stamp = send_time(day, slot, tz).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        energy_wh = rng.integers(50, 1500, len(meter_ids)).tolist()
        for meter_id, wh in zip(meter_ids, energy_wh, strict=True):
            body = orjson.dumps({"id": meter_id, "timestamp": stamp, "reading_kWh": wh / 1000})
            lines.append(sign_body(keys[meter_id], body).encode() + b" " + body)
    return lines


# -- servers in child processes ---------------------------------------------------
@dataclass
class Child:
    """A server in a child process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, path: str = "/api/v1/status", timeout: float = 600) -> None:
        """Poll ``path`` until it answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def get_json(self, path: str) -> dict[str, Any]:
        """GET ``path`` and decode its JSON answer."""
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def stop(self) -> None:
        """SIGTERM, wait (a clean shutdown writes the recovery JSON)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_child(command: list[str], log_path: Path, port: int,
                env: dict[str, str] | None = None) -> Child:
    """Start ``command`` with output to ``log_path``."""
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                               env={**os.environ, **(env or {})})
    return Child(process, port, log_path)


def start_server(data_dir: Path, timezone: str, extra: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> Child:
    """The real ``server.py`` (no demo, no dashboards) on a free port."""
    port = free_port()
    command = [sys.executable, str(ROOT / "server.py"), "--port", str(port),
               "--data-dir", str(data_dir), "--timezone", timezone, "--no-demo",
               "--no-dashboards", *extra]
    child = start_child(command, data_dir.parent / f"{data_dir.name}-server.log", port, env)
    child.wait_ready()
    return child


# -- profiles ---------------------------------------------------------------------
#: py-spy for the benchmarks' ``--profile`` (on PATH, else where the tools are kept).
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def py_spy_record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy recording process ``pid`` and its children for ``seconds``: collapsed stacks."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
         "--duration", str(int(seconds)), "--rate", "200", "--nonblocking",
         "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- wrk --------------------------------------------------------------------------
WRK_SCRIPT = r"""
-- Posts precomputed signed packets from $BENCH_PACKETS ("<signature> <body>" lines),
-- each once (wrapping round only if the file runs out), and prints a JSON summary.
local index = 0
function setup(thread)
  thread:set("thread_index", index)
  index = index + 1
end

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local me = thread_index or 0
  prepared, count, position = {}, 0, 0
  local line_number = 0
  for line in io.lines(os.getenv("BENCH_PACKETS")) do
    if line_number % threads == me then
      local signature, body = line:match("^(%x+) (.*)$")
      count = count + 1
      prepared[count] = wrk.format("POST", "/meter", {
        ["Content-Type"] = "application/json", ["X-Meter-Signature"] = signature}, body)
    end
    line_number = line_number + 1
  end
end

function request()
  position = position + 1
  if position > count then position = 1 end
  return prepared[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


def run_wrk(url: str, packets: Path, script: Path, seconds: float, connections: int,
            threads: int = 1) -> dict[str, float]:
    """One wrk run posting the packets of ``packets``; requests/s and latency [ms]."""
    env = {**os.environ, "BENCH_PACKETS": str(packets), "BENCH_THREADS": str(threads)}
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s",
               "-s", str(script), url + "/meter"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    raw = json.loads(line.removeprefix("BENCH "))
    duration_s = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(duration_s, 3),
        "requests_per_s": round(raw["requests"] / duration_s, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"] + raw["timeouts"],
    }


# -- an open-loop load: requests sent on a fixed schedule ----------------------------
async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def open_loop(port: int, requests: Sequence[bytes], rate_per_s: float,
                    connections: int = 64) -> list[tuple[float, float, int]]:
    """Send ``requests`` at a fixed rate whatever the answers; (scheduled_at, latency_s, status).

    Latency counts from the scheduled send time, so a stalled server shows up in full
    (no coordinated omission). ``scheduled_at`` is ``time.monotonic()``.
    """
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    results: list[tuple[float, float, int]] = [(0.0, 0.0, 0)] * len(requests)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            index, scheduled = item
            status = await _exchange(reader, writer, requests[index])
            results[index] = (scheduled, time.monotonic() - scheduled, status)
        writer.close()

    workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
    start = time.monotonic() + 0.2
    for index in range(len(requests)):
        scheduled = start + index / rate_per_s
        delay = scheduled - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        queue.put_nowait((index, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return results


def http_request(line: bytes) -> bytes:
    """A keep-alive POST /meter request for a ``<signature> <body>`` line."""
    signature, body = line.split(b" ", 1)
    return (b"POST /meter HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Meter-Signature: " + signature + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")



# -- filling a master database fast (the packed layout of storage/schema.sql) ------
def insert_day_rows(db: sqlite3.Connection, meter_ids: Sequence[int], day: date,
                    energy_wh: np.ndarray) -> None:
    """Packed rows of one day: (meters x slots) readings [Wh], negative ones missing."""
    from metermatrix.storage.packing import ALL_ON_TIME, MISSING, day_number, pack_rows

    values = np.full((len(meter_ids), 48), MISSING, np.uint16)
    present = np.asarray(energy_wh) >= 0
    values[:, : present.shape[1]] = np.where(present, energy_wh, MISSING)
    number = day_number(day)
    db.executemany("INSERT OR REPLACE INTO day_readings (day, meter_id, slots_wh, marks)"
                   " VALUES (?, ?, ?, ?)",
                   ((number, int(m), blob, ALL_ON_TIME)
                    for m, blob in zip(meter_ids, pack_rows(values), strict=True)))


def insert_daily_totals(db: sqlite3.Connection, meter_ids: Sequence[int], days: list[date],
                        energy_wh: np.ndarray, readings: int = 48) -> None:
    """(meters x days) daily totals [Wh], a day at a time (the table's key order)."""
    from metermatrix.storage.packing import day_number

    for column, day in enumerate(days):
        number = day_number(day)
        db.executemany("INSERT OR REPLACE INTO daily_totals (day, meter_id, energy_wh, readings)"
                       " VALUES (?, ?, ?, ?)",
                       ((number, int(m), int(wh), readings) for m, wh in
                        zip(meter_ids, np.asarray(energy_wh)[:, column].tolist(), strict=True)))
