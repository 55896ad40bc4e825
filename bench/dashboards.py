"""Benchmark: the management dashboard through the server, on the demo data and at scale.

    python bench/dashboards.py [--meters 100000] [--days 90] [--loads 6] [--skip-large]
    python bench/dashboards.py --city [--loads 4] [--keep-data DIR]

For two data folders, the demo data and a synthetic fleet of ``--meters`` meters with
``--days`` days of daily totals (plus every meter's half-hourly readings of yesterday and of
today so far, built with executemany in key order), the real ``server.py`` runs with
dashboards and its default pool of preheated kernels. Debian's Chromium (Playwright) logs in
as the manager and opens ``/management-dashboard/`` ``--loads`` times, each time once the
pool is warm again: the time from the request to the rendered dashboard (region chart and map
drawn in the browser) is recorded, then the time one period change takes to redraw. On the
large fleet this is done twice: with the database unchanged since the kernels were preheated
(they reuse the totals they read then), and with a packet stored just before each request
(they read today's totals again).

Then, on the demo server, ``/meter`` latency is measured with a steady open-loop stream of
signed packets: idle, while a browser opens dashboards one after another, and idle again.
The browser runs at the lowest priority: it stands for the managers' own computers.
With ``--city`` only the large fleet is measured, at Singapore's 1.4 M meters with 30
closed days that each hold every meter's packed half-hourly rows (``bench/_citydata.py``,
some 6 GB and a quarter of an hour to build), and the ``/meter`` latency is measured on
that server. Aims: dashboard under 2 s for both data sets, redraw under 1 s; ``/meter``
p50 while loading within 20 % of idle. Nothing is asserted; the figures go to
``bench/results/dashboards.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._citydata import build_city_database, build_database, clock_offset_s  # noqa: E402
from bench._common import (  # noqa: E402
    ROOT,
    Child,
    cpu_seconds,
    evening_timezone,
    free_port,
    http_request,
    median,
    open_loop,
    packet_lines,
    percentile,
    sent_slots,
    start_child,
    summary_row,
    write_result,
)
from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD  # noqa: E402
from metermatrix.signing import load_fleet_key  # noqa: E402

AIM_S = 2.0
AIM_REDRAW_S = 1.0
#: ``--city``: Singapore's fleet with a month of closed days.
CITY_METERS, CITY_DAYS = 1_400_000, 30
AIM_LATENCY_RATIO = 1.2
SEED = 11
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KERNELS = 2
WARM = "metermatrix.voila.management: metermatrix: dashboard kernel warm"
DRAWN = re.compile(r"drawn in ([\d.]+) s")


# -- servers and browsers --------------------------------------------------------------
def start_dashboard_server(data_dir: Path, timezone: str, demo: bool,
                           offset_s: float = 0.0) -> Child:
    """The real ``server.py`` with dashboards (default kernel pool) on a free port."""
    port = free_port()
    command = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--data-dir",
               str(data_dir), "--timezone", timezone, "--demo" if demo else "--no-demo",
               "--dashboards", "--voila-kernels", str(KERNELS), "--clock-offset-s", repr(offset_s)]
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    log_path.unlink(missing_ok=True)  # a kept folder's last log: its kernels are not warm
    child = start_child(command, log_path, port)
    child.wait_ready()
    return child


def wait_warm(child: Child, count: int, timeout_s: float = 300) -> float:
    """Wait until ``count`` management kernels have reported warm; seconds waited."""
    started = time.monotonic()
    while child.log_path.read_text().count(WARM) < count:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"kernels not warm: {child.log_path.read_text()[-3000:]}")
        time.sleep(0.25)
    return time.monotonic() - started


def log_in(page: Page, child: Child) -> None:
    page.goto(child.url + "/management/login")
    page.fill("#username", DEMO_MANAGER)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button.primary")
    page.wait_for_url(child.url + "/management")


_RENDERED = """() => ['mm-region-bars', 'mm-region-map'].every(c => {
    const image = document.querySelector('img.' + c); return image && image.naturalWidth > 100 })"""


def open_dashboard(page: Page, child: Child) -> dict[str, float]:
    """Seconds from the request to the drawn region chart and map, then to a period redraw."""
    started = time.perf_counter()
    page.goto(child.url + "/management-dashboard/", wait_until="commit")
    page.wait_for_function(_RENDERED, timeout=300_000)
    rendered_s = time.perf_counter() - started
    status = page.locator(".mm-status")
    first = DRAWN.search(status.inner_text())
    changed = time.perf_counter()
    page.locator(".widget-dropdown", has_text="Period").locator("select").select_option(
        label="This month")
    page.wait_for_function("() => document.querySelector('.mm-status').innerText"
                           ".includes('This month')", timeout=120_000)
    redraw_s = time.perf_counter() - changed
    second = DRAWN.search(status.inner_text())
    return {"rendered_s": rendered_s, "redraw_s": redraw_s,
            "kernel_first_draw_s": float(first.group(1)) if first else float("nan"),
            "kernel_redraw_s": float(second.group(1)) if second else float("nan")}


def renice_browser(niceness: int = 19) -> None:
    """Lower the priority of this process's Chromium: it stands for the managers' own
    computers, which in real use do not share the server's CPUs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "chromium" in (entry / "cmdline").read_bytes().split(b"\0")[0].decode():
                os.setpriority(os.PRIO_PROCESS, int(entry.name), niceness)
        except (OSError, IndexError):
            continue


def with_browser(work: Callable[[Page], object]) -> object:
    """Run ``work(page)`` in a fresh headless Chromium."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        renice_browser()
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            return work(context.new_page())
        finally:
            browser.close()


def measure_loads(child: Child, loads: int, before_each: Callable[[int], None] | None = None,
                  warm_before: int = 0) -> dict[str, object]:
    """``loads`` dashboard openings, each with the kernel pool warm (``warm_before`` kernels
    were used up earlier); ``before_each(number)`` runs just before each request."""
    def work(page: Page) -> list[dict[str, float]]:
        log_in(page, child)
        runs = []
        for number in range(loads):
            wait_warm(child, KERNELS + warm_before + number)
            time.sleep(1)  # the pool's refill has settled
            if before_each is not None:
                before_each(number)
            tab = page.context.new_page()
            runs.append(open_dashboard(tab, child))
            tab.close(run_before_unload=True)
        return runs

    runs: list[dict[str, float]] = with_browser(work)  # type: ignore[assignment]
    figures: dict[str, object] = {"loads": len(runs), "runs": runs}
    for key in ("rendered_s", "redraw_s", "kernel_first_draw_s", "kernel_redraw_s"):
        values = [run[key] for run in runs]
        figures[f"{key}_median"] = round(median(values), 3)
        figures[f"{key}_max"] = round(max(values), 3)
    return figures


# -- /meter latency ---------------------------------------------------------------------
def meter_lines(data_dir: Path, tz: ZoneInfo, count: int, offset_s: float = 0.0) -> list[bytes]:
    """``count`` signed packets (``<signature> <body>``) of new meters, today's sent slots."""
    day, slots = sent_slots(tz, datetime.now(UTC) + timedelta(seconds=offset_s))
    slots = slots[-3:]
    meters = unused_meter_ids(data_dir, count // len(slots) + 1)
    return packet_lines(load_fleet_key(data_dir, create=False), meters, day, slots, tz)[:count]


def unused_meter_ids(data_dir: Path, count: int, first: int = 900_000_000) -> list[int]:
    """``count`` meter ids from ``first`` on that the folder's database does not know yet
    (a kept folder has the meters of earlier runs' packets)."""
    found: list[int] = []
    with sqlite3.connect(f"file:{data_dir / 'metermatrix.sqlite3'}?mode=ro", uri=True) as db:
        while len(found) < count:
            last = first + 10 * count
            known = {meter_id for (meter_id,) in db.execute(
                "SELECT meter_id FROM meters WHERE meter_id BETWEEN ? AND ?", (first, last))}
            found += [m for m in range(first, last + 1) if m not in known]
            first = last + 1
    return found[:count]


def post_packet(child: Child, line: bytes) -> int:
    """POST one ``<signature> <body>`` line to /meter; the status."""
    signature, body = line.split(b" ", 1)
    connection = http.client.HTTPConnection("127.0.0.1", child.port, timeout=60)
    connection.request("POST", "/meter", body=body, headers={
        "Content-Type": "application/json", "X-Meter-Signature": signature.decode()})
    status = connection.getresponse().status
    connection.close()
    return status


def latency(results: list[tuple[float, float, int]]) -> dict[str, float]:
    """p50/p90/p99 [ms] of an open-loop run, and how many answers were not 2xx."""
    values = [seconds * 1000 for _, seconds, _ in results]
    return {"p50_ms": round(percentile(values, 50), 2), "p90_ms": round(percentile(values, 90), 2),
            "p99_ms": round(percentile(values, 99), 2),
            "non_2xx": sum(1 for _, _, status in results if not 200 <= status < 300)}


def measure_meter_latency(child: Child, data_dir: Path, tz: ZoneInfo, rate: float,
                          seconds: float, offset_s: float = 0.0) -> dict[str, object]:
    """/meter latency idle, while dashboards open one after another, and idle again."""
    per_phase = int(rate * seconds)
    requests = [http_request(line)
                for line in meter_lines(data_dir, tz, 3 * per_phase, offset_s)]
    phases = [requests[i * per_phase:(i + 1) * per_phase] for i in range(3)]
    def phase(requests: list[bytes]) -> dict[str, float]:
        cpu_s = cpu_seconds(child.pid)
        figures = latency(asyncio.run(open_loop(child.port, requests, rate)))
        return {**figures, "server_cpu_s": round(cpu_seconds(child.pid) - cpu_s, 2),
                "load_average_1min": round(os.getloadavg()[0], 2)}

    idle = phase(phases[0])
    stop, opened = threading.Event(), [0]

    def keep_opening(page: Page) -> None:
        log_in(page, child)
        while not stop.is_set():
            tab = page.context.new_page()
            tab.goto(child.url + "/management-dashboard/", wait_until="commit")
            tab.wait_for_function(_RENDERED, timeout=300_000)
            tab.close(run_before_unload=True)
            opened[0] += 1

    loader = threading.Thread(target=with_browser, args=(keep_opening,))
    loader.start()
    time.sleep(3)  # the browser is up and the first page is loading
    loaded = phase(phases[1])
    stop.set()
    loader.join()
    after = phase(phases[2])
    return {"rate_per_s": rate, "seconds_per_phase": seconds, "idle": idle,
            "while_dashboards_load": loaded, "idle_after": after,
            "dashboards_opened_meanwhile": opened[0],
            "p50_ratio_loading_to_idle": round(loaded["p50_ms"] / idle["p50_ms"], 3)}


def main() -> None:
    """Build, serve, measure, write bench/results/dashboards.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--loads", type=int, default=6)
    parser.add_argument("--rate", type=float, default=100.0, help="/meter requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="per /meter phase")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--city", action="store_true",
                        help=f"the city scale only: {CITY_METERS:,} meters, {CITY_DAYS} closed "
                             "days with every packed row, /meter latency on that server")
    parser.add_argument("--keep-data", type=Path, default=None,
                        help="build the large folder here and keep it; reused when present"
                             " (built the same day)")
    parser.add_argument("--clock-at", default="14:10",
                        help="local time (HH:MM, Asia/Singapore) of the large run's server clock")
    args = parser.parse_args()
    if args.city:
        args.meters, args.days = CITY_METERS, CITY_DAYS
    result: dict[str, object] = {"kernels_per_notebook": KERNELS}
    with tempfile.TemporaryDirectory(prefix="metermatrix-bench-") as tmp:
        if not args.city:
            result.update(measure_demo(Path(tmp) / "demo", args))
        if not args.skip_large or args.city:
            result["large"] = measure_large(args.keep_data or Path(tmp) / "large", args)
    write_summary(result)


def measure_demo(data_dir: Path, args: argparse.Namespace) -> dict[str, object]:
    """Dashboard loads and /meter latency on the demo data."""
    timezone = evening_timezone()
    child = start_dashboard_server(data_dir, timezone, demo=True)
    try:
        warm_s = round(wait_warm(child, KERNELS), 1)
        loads = measure_loads(child, args.loads)
        latency = measure_meter_latency(child, data_dir, ZoneInfo(timezone), args.rate,
                                        args.seconds)
    finally:
        child.stop()
    return {"demo_warm_up_s": warm_s, "demo": loads, "meter_latency": latency}


def measure_large(data_dir: Path, args: argparse.Namespace) -> dict[str, object]:
    """Build (or reuse) the large database and measure dashboard loads on it; at city
    scale /meter latency too."""
    timezone = "Asia/Singapore"
    tz = ZoneInfo(timezone)
    offset_s = clock_offset_s(args.clock_at, tz)
    started = time.perf_counter()
    if (data_dir / "metermatrix.sqlite3").exists():
        counts: dict[str, int] = {"reused": 1}
    elif args.city:
        counts = build_city_database(data_dir, args.meters, args.days, tz, SEED, offset_s)
    else:
        counts = build_database(data_dir, args.meters, args.days, tz, SEED, offset_s)
    build_s = time.perf_counter() - started
    print(f"database of {counts} built in {build_s:.0f} s", flush=True)
    child = start_dashboard_server(data_dir, timezone, demo=False, offset_s=offset_s)
    figures: dict[str, object] = {"meters": args.meters, "days": args.days, "rows": counts,
                                  "every_closed_day_packed": args.city,
                                  "build_s": round(build_s, 1)}
    try:
        figures["warm_up_s"] = round(wait_warm(child, KERNELS, timeout_s=1800), 1)
        figures["database_unchanged_since_preheat"] = measure_loads(child, args.loads)
        lines = meter_lines(data_dir, tz, args.loads, offset_s)

        def write_first(number: int) -> None:  # a packet: the preheated totals are stale
            if (status := post_packet(child, lines[number])) != 201:
                raise RuntimeError(f"the packet was not stored: HTTP {status}")

        figures["after_a_write"] = measure_loads(child, args.loads, write_first,
                                                 warm_before=args.loads)
        if args.city:
            wait_warm(child, KERNELS + 2 * args.loads, timeout_s=1800)
            figures["meter_latency"] = measure_meter_latency(child, data_dir, tz, args.rate,
                                                             args.seconds, offset_s)
    finally:
        child.stop()
    return figures


def write_summary(result: dict[str, object]) -> None:
    """The summary rows, then bench/results/dashboards.json."""
    summary = []
    for label, part in (("demo", result.get("demo")), ("large", result.get("large"))):
        if not isinstance(part, dict):
            continue
        name = "demo" if label == "demo" else f"{part['meters']:,} meters"
        loads = part if label == "demo" else part["database_unchanged_since_preheat"]
        summary.append(summary_row(f"dashboard request to drawn chart and map, {name} (median)",
                                   loads["rendered_s_median"], "s", AIM_S))
        if label == "large":
            summary.append(summary_row(
                f"the same right after a packet was stored, {name} (median)",
                part["after_a_write"]["rendered_s_median"], "s", AIM_S))
        summary.append(summary_row(f"period change redraw in the browser, {name} (median)",
                                   loads["redraw_s_median"], "s", AIM_REDRAW_S))
        meter = result.get("meter_latency") if label == "demo" else part.get("meter_latency")
        if isinstance(meter, dict):
            summary.append(summary_row(f"/meter p50 while dashboards load / idle, {name}",
                                       meter["p50_ratio_loading_to_idle"], "",
                                       AIM_LATENCY_RATIO))
    path = write_result("dashboards", {"summary": summary, **result})
    for row in summary:
        print(f"{row['figure']}: {row['value']} {row['unit']}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
