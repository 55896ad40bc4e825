"""Benchmark: the residents' consumption page for one meter in a database of 10,000 meters.

    python bench/consumption.py [--meters 10000] [--fleet-days 7] [--requests 30]

Builds a master database in a temporary folder with executemany: ``--meters`` meters over
the five regions, a year of daily totals for every meter (closed days, region totals),
every meter's half-hourly readings for the last ``--fleet-days`` days and today so far,
and the benchmarked resident's meter with a whole year of half-hourly readings. Then the
real ``server.py`` serves it; a logged-in client requests the consumption page of every
period ``--requests`` times over one keep-alive connection. Server time per request is
read from the server's access log (Tornado's request time); the client's wall time is
reported beside it. The first request of a period also computes the region's average
meter, which the server then shares for a minute with every resident of the region: it is
reported on its own, the median is over the requests after it. Aim: median under 100 ms
for every period. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import re
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    cpu_seconds,
    insert_daily_totals,
    insert_day_rows,
    median,
    percentile,
    start_server,
    summary_row,
    write_result,
)
from metermatrix.accounts import hash_password  # noqa: E402
from metermatrix.fleet import synthetic_fleet  # noqa: E402
from metermatrix.loadshape import fleet_day_energy_wh  # noqa: E402
from metermatrix.periods import RESIDENT_PERIODS, last_due_boundary  # noqa: E402
from metermatrix.slots import SLOTS_PER_DAY  # noqa: E402
from metermatrix.storage import MeterRecord, open_storage  # noqa: E402

AIM_MS = 100.0
PASSWORD = "bench-password-1"
SEED = 7
_ACCESS = re.compile(r"\d{3} GET (/profile/\d+/consumption\?period=[\w-]+) .*? ([\d.]+)ms")


def due_slots(day: date, now: datetime, tz: ZoneInfo) -> int:
    """How many slots of today are due at ``now``."""
    boundary = last_due_boundary(now, tz)
    midnight = datetime.combine(day, datetime.min.time(), tz)
    return max(0, min(SLOTS_PER_DAY, int((boundary - midnight) / timedelta(minutes=30))))


def build_database(data_dir: Path, meters: int, fleet_days: int, tz: ZoneInfo) -> int:
    """Fill ``data_dir`` with the benchmark's master database; returns the resident's meter."""
    fleet = synthetic_fleet(meters, SEED)
    ids = np.array([meter.meter_id for meter in fleet], dtype=np.int64)
    resident = int(ids[0])
    now = datetime.now(UTC)
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=back) for back in range(365, 0, -1)]
    storage = open_storage(data_dir)
    with storage.transaction():
        for meter in fleet:
            storage.save_meter(MeterRecord(meter.meter_id, meter.name, meter.fin_no,
                                           meter.region))
        storage.add_resident(resident, hash_password(PASSWORD))
    storage.close()
    db = sqlite3.connect(data_dir / "metermatrix.sqlite3", isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")
    # Every meter's half hours of the last days and today so far; the resident's whole year.
    recent = days[-fleet_days:] if fleet_days else []
    fleet_wh = np.stack([fleet_day_energy_wh(ids, day, SEED) for day in recent + [today]], 1)
    fleet_wh[:, -1, due_slots(today, now, tz):] = -1
    resident_wh = np.stack([fleet_day_energy_wh(ids[:1], day, SEED)[0] for day in days])
    # Daily totals: sums of the readings where there are any, made-up days elsewhere [Wh].
    rng = np.random.default_rng(SEED)
    totals_wh = np.rint(rng.lognormal(np.log(9500), 0.35, (len(ids), len(days)))).astype(np.int64)
    totals_wh[0] = resident_wh.sum(axis=1)
    if recent:
        totals_wh[:, -len(recent):] = fleet_wh[:, :-1].sum(axis=2)
    db.execute("BEGIN")
    insert_totals(db, ids, days, totals_wh)
    insert_readings(db, ids[:1], days[: len(days) - len(recent)],
                    resident_wh[None, : len(days) - len(recent)])
    insert_readings(db, ids, recent + [today], fleet_wh)
    db.execute("COMMIT")
    db.close()
    storage = open_storage(data_dir)
    with storage.transaction():
        for day in days:  # marks the day closed and totals its regions
            storage.close_day(day, [])
    storage.close()
    return resident


def insert_totals(db: sqlite3.Connection, meter_ids: np.ndarray, days: list[date],
                  totals_wh: np.ndarray) -> None:
    """executemany the (meters x days) daily totals, in key order."""
    insert_daily_totals(db, meter_ids.tolist(), days, totals_wh, SLOTS_PER_DAY)


def insert_readings(db: sqlite3.Connection, meter_ids: np.ndarray, days: list[date],
                    energy_wh: np.ndarray) -> None:
    """Packed (meters x days x 48) readings, a day at a time; negative ones are not sent."""
    for column, day in enumerate(days):
        insert_day_rows(db, meter_ids.tolist(), day, energy_wh[:, column])


class Client:
    """A keep-alive HTTP client that keeps the session cookie."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None
                ) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, response.read()

    def login(self, meter_id: int) -> None:
        self.request("GET", "/profile")
        status, _ = self.request("POST", "/profile", {
            "meter_id": str(meter_id), "password": PASSWORD, "_xsrf": self.cookies["_xsrf"]})
        if status != 303:
            raise RuntimeError(f"login failed with {status}")


def measure(port: int, pid: int, meter_id: int, requests: int
            ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Client wall times [ms] of ``requests`` page loads per period, and the server's CPU
    time per page load [ms] (which other processes on the machine do not inflate)."""
    client = Client(port)
    client.login(meter_id)
    wall: dict[str, list[float]] = {}
    cpu_ms: dict[str, float] = {}
    for period in RESIDENT_PERIODS:
        path = f"/profile/{meter_id}/consumption?period={period}"
        client.request("GET", path)  # the first request, reported on its own
        wall[period] = []
        cpu_before = cpu_seconds(pid)
        for _ in range(requests):
            started = time.perf_counter()
            status, _ = client.request("GET", path)
            wall[period].append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
        cpu_ms[period] = (cpu_seconds(pid) - cpu_before) * 1000 / requests
    return wall, cpu_ms


def server_times(log_text: str) -> dict[str, list[float]]:
    """Tornado's request times [ms] from the access log, per period, in request order."""
    times: dict[str, list[float]] = {}
    for path, ms in _ACCESS.findall(log_text):
        times.setdefault(path.rsplit("=", 1)[1], []).append(float(ms))
    return times


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (other work slows the wall times)."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> None:
    """Build, serve, measure, write bench/results/consumption.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--fleet-days", type=int, default=7)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--timezone", default="Asia/Singapore")
    args = parser.parse_args()
    tz = ZoneInfo(args.timezone)
    with tempfile.TemporaryDirectory(prefix="metermatrix-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        meter_id = build_database(data_dir, args.meters, args.fleet_days, tz)
        build_s = time.perf_counter() - started
        print(f"database built in {build_s:.1f} s", flush=True)
        server = start_server(data_dir, args.timezone)
        try:
            wall, cpu_ms = measure(server.port, server.pid, meter_id, args.requests)
        finally:
            server.stop()
        server_ms = server_times(server.log_path.read_text())
        rows = (sqlite3.connect(data_dir / "metermatrix.sqlite3")
                .execute("SELECT COUNT(*) * 48 FROM day_readings").fetchone()[0])
    periods = {  # the first request also computes the region's average (then shared)
        period: {
            "server_median_ms": round(median(server_ms[period][1:]), 2),
            "server_p90_ms": round(percentile(server_ms[period][1:], 90), 2),
            "server_first_request_ms": server_ms[period][0],
            "server_cpu_ms_per_request": round(cpu_ms[period], 2),
            "client_median_ms": round(median(wall[period]), 2),
        }
        for period in RESIDENT_PERIODS
    }
    worst = max(figures["server_median_ms"] for figures in periods.values())
    summary = [summary_row(f"{period} page, server median", figures["server_median_ms"],
                           "ms", AIM_MS) for period, figures in periods.items()]
    summary += [summary_row(f"{period} page, first request (region average computed)",
                            figures["server_first_request_ms"], "ms")
                for period, figures in periods.items()]
    path = write_result("consumption", {
        "summary": summary,
        "meters": args.meters, "fleet_days_of_readings": args.fleet_days,
        "resident_readings_days": 365, "readings_rows": rows, "requests_per_period": args.requests,
        "timezone": args.timezone, "database_build_s": round(build_s, 1),
        "load_average_during_run": load_average(),
        "periods": periods, "worst_server_median_ms": worst, "aim_ms": AIM_MS,
    })
    for period, figures in periods.items():
        print(f"{period:>14}: server median {figures['server_median_ms']:7.2f} ms,"
              f" CPU {figures['server_cpu_ms_per_request']:6.2f} ms,"
              f" first request {figures['server_first_request_ms']:7.2f} ms"
              f"  (client median {figures['client_median_ms']:.2f} ms)")
    print(f"worst median {worst:.1f} ms against an aim of {AIM_MS:.0f} ms -> {path}")


if __name__ == "__main__":
    main()
