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

With ``--postgres`` the same history goes into a throwaway PostgreSQL cluster by COPY
(bench/_consumption_pg.py), every meter has a resident account, and the requests are
spread over ``--residents`` random residents, each with a year of half-hourly readings
(``--fleet-days 365`` gives every meter a year of them).
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


def measure(port: int, pid: int, meter_ids: list[int], requests: int
            ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Client wall times [ms] of ``requests`` page loads per period, spread over the
    residents of ``meter_ids``, and the server's CPU time per page load [ms] (which other
    processes on the machine do not inflate). Each resident's first load of a period is
    left out (it may compute the region's average)."""
    clients = []
    for meter_id in meter_ids:
        clients.append(Client(port))
        clients[-1].login(meter_id)
    per_resident = max(1, -(-requests // len(meter_ids)))
    wall: dict[str, list[float]] = {}
    cpu_ms: dict[str, float] = {}
    for period in RESIDENT_PERIODS:
        wall[period] = []
        cpu_s = 0.0
        for client, meter_id in zip(clients, meter_ids, strict=True):
            path = f"/profile/{meter_id}/consumption?period={period}"
            client.request("GET", path)  # the first request, reported on its own
            cpu_before = cpu_seconds(pid)
            for _ in range(per_resident):
                started = time.perf_counter()
                status, _ = client.request("GET", path)
                wall[period].append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
            cpu_s += cpu_seconds(pid) - cpu_before
        cpu_ms[period] = cpu_s * 1000 / len(wall[period])
    return wall, cpu_ms


def server_times(log_text: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Tornado's request times [ms] from the access log, per period: (each resident's
    first request, the requests after it)."""
    firsts: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    seen: set[str] = set()
    for path, ms in _ACCESS.findall(log_text):
        period = path.rsplit("=", 1)[1]
        (times if path in seen else firsts).setdefault(period, []).append(float(ms))
        seen.add(path)
    return firsts, times


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (other work slows the wall times)."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def build(data_dir: Path, args: argparse.Namespace, url: str | None) -> list[int]:
    """The benchmark's master database in SQLite, or at ``url`` (PostgreSQL, by COPY)."""
    tz = ZoneInfo(args.timezone)
    if url is None:
        return [build_database(data_dir, args.meters, args.fleet_days, tz)]
    from bench._consumption_pg import build_postgres

    return build_postgres(url, data_dir, args.meters, args.fleet_days, args.residents,
                          hash_password(PASSWORD), tz, SEED)


def readings_stored(data_dir: Path, url: str | None) -> int:
    """Half-hourly readings the database holds room for (48 per packed row)."""
    if url is None:
        db = sqlite3.connect(data_dir / "metermatrix.sqlite3")
    else:
        import psycopg

        db = psycopg.connect(url)  # type: ignore[assignment]
    rows = int(db.execute("SELECT COUNT(*) * 48 FROM day_readings").fetchone()[0])
    db.close()
    return rows


def run(args: argparse.Namespace, url: str | None) -> dict[str, object]:
    """Build, serve, measure: the figures of each period."""
    with tempfile.TemporaryDirectory(prefix="metermatrix-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        meter_ids = build(data_dir, args, url)
        build_s = time.perf_counter() - started
        print(f"database built in {build_s:.1f} s", flush=True)
        server = start_server(data_dir, args.timezone, ["--database", url] if url else [])
        try:
            wall, cpu_ms = measure(server.port, server.pid, meter_ids, args.requests)
        finally:
            server.stop()
        firsts, server_ms = server_times(server.log_path.read_text())
        rows = readings_stored(data_dir, url)
    periods = {  # the first request also computes the region's average (then shared)
        period: {
            "server_median_ms": round(median(server_ms[period]), 2),
            "server_p90_ms": round(percentile(server_ms[period], 90), 2),
            "server_first_request_ms": max(firsts[period]),
            "server_cpu_ms_per_request": round(cpu_ms[period], 2),
            "client_median_ms": round(median(wall[period]), 2),
        }
        for period in RESIDENT_PERIODS
    }
    return {"periods": periods, "readings_rows": rows, "database_build_s": round(build_s, 1),
            "residents": meter_ids}


def main() -> None:
    """Build, serve, measure, write bench/results/consumption[-postgres].json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--fleet-days", type=int, default=7)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--timezone", default="Asia/Singapore")
    parser.add_argument("--postgres", action="store_true",
                        help="on PostgreSQL: a throwaway cluster (tests/pg.py), built by COPY")
    parser.add_argument("--residents", type=int, default=10,
                        help="with --postgres: random residents the requests are spread over")
    args = parser.parse_args()
    if not args.postgres:
        figures = run(args, None)
    else:
        from tests.pg import Cluster, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            print("no PostgreSQL binaries: skipped")
            return
        cluster = Cluster(bin_dir).start()
        try:
            figures = run(args, cluster.create_database())
        finally:
            cluster.stop()
    periods: dict[str, dict[str, float]] = figures["periods"]  # type: ignore[assignment]
    worst = max(period["server_median_ms"] for period in periods.values())
    summary = [summary_row(f"{period} page, server median", row["server_median_ms"],
                           "ms", AIM_MS) for period, row in periods.items()]
    summary += [summary_row(f"{period} page, first request (region average computed)",
                            row["server_first_request_ms"], "ms")
                for period, row in periods.items()]
    path = write_result("consumption-postgres" if args.postgres else "consumption", {
        "summary": summary, "backend": "postgresql" if args.postgres else "sqlite",
        "meters": args.meters, "fleet_days_of_readings": args.fleet_days,
        "resident_readings_days": 365, "requests_per_period": args.requests,
        "timezone": args.timezone, "load_average_during_run": load_average(),
        **figures, "worst_server_median_ms": worst, "aim_ms": AIM_MS,
    })
    for period, row in periods.items():
        print(f"{period:>14}: server median {row['server_median_ms']:7.2f} ms,"
              f" CPU {row['server_cpu_ms_per_request']:6.2f} ms,"
              f" first request {row['server_first_request_ms']:7.2f} ms"
              f"  (client median {row['client_median_ms']:.2f} ms)")
    print(f"worst median {worst:.1f} ms against an aim of {AIM_MS:.0f} ms -> {path}")


if __name__ == "__main__":
    main()
