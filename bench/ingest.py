"""Benchmark: single-packet POST /meter throughput, the real server against a bare handler.

    python bench/ingest.py [--rounds 5] [--seconds 8] [--connections 50] [--profile DIR]

The real ``server.py`` (signed packets, validation, today's store, a durable group commit
in SQLite with ``synchronous=FULL`` before each answer) and a bare Tornado app whose
handler only parses the same JSON run side by side in child processes; ``wrk`` loads
them in turn, in alternating rounds, with packets that are each stored once (distinct
meters and slots of the open day). Figures: requests/s, p50/p99 latency, CPU per request,
and the ratio real / bare (aim: 0.90 or better). ``--profile DIR`` records each server
with py-spy during an extra round before the measured ones. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    WRK_SCRIPT,
    Child,
    cpu_seconds,
    evening_timezone,
    free_port,
    median,
    packet_lines,
    py_spy_record,
    run_wrk,
    sent_slots,
    start_child,
    start_server,
    summary_row,
    write_result,
)

FIRST_METER_ID = 300_000_001
AIM_RATIO = 0.90


def serve_bare(port: int) -> None:
    """The baseline: a Tornado handler that parses the packet's JSON and answers, nothing else."""
    import asyncio

    import orjson
    import tornado.web

    class PacketHandler(tornado.web.RequestHandler):
        def post(self) -> None:
            data = orjson.loads(self.request.body)
            self.set_status(201)
            self.set_header("Content-Type", "application/json")
            self.finish(orjson.dumps({"status": "stored", "meter": data["id"]}))

    class StatusHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.finish({"status": "ok"})

    async def run() -> None:
        app = tornado.web.Application([(r"/meter", PacketHandler),
                                       (r"/api/v1/status", StatusHandler)])
        app.listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(run())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per server")
    parser.add_argument("--seconds", type=int, default=8, help="length of one round [s]")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--max-rps", type=int, default=9000,
                        help="packets prepared per round = max-rps x seconds")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record each server with py-spy in an unmeasured round into this"
                             " folder (real.txt, bare.txt: collapsed stacks)")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args()


def prepare_packets(work: Path, fleet_key: bytes, tz_name: str, rounds: int,
                    per_round: int) -> list[Path]:
    """One file of distinct signed packets per round (warm-up first)."""
    tz = ZoneInfo(tz_name)
    day, slots = sent_slots(tz)
    meters = math.ceil(per_round * rounds / len(slots))
    meter_ids = list(range(FIRST_METER_ID, FIRST_METER_ID + meters))
    lines = packet_lines(fleet_key, meter_ids, day, slots, tz)
    print(f"prepared {len(lines)} packets: {meters} meters x {len(slots)} slots of {day} "
          f"({tz_name})", flush=True)
    files = []
    for index in range(rounds):
        path = work / f"packets-{index}.txt"
        path.write_bytes(b"\n".join(lines[index * per_round:(index + 1) * per_round]) + b"\n")
        files.append(path)
    return files


def readings_today(server: Child) -> int:
    return int(server.get_json("/api/v1/status")["readings_today"])


def measure(server: Child, packets: Path, script: Path, seconds: float, connections: int,
            count_stored: bool) -> dict[str, float]:
    """One wrk round against ``server``, with its CPU use and (real server) readings stored."""
    stored_before = readings_today(server) if count_stored else 0
    cpu_before = cpu_seconds(server.pid)
    figures = run_wrk(server.url, packets, script, seconds, connections)
    figures["server_cpu_us_per_request"] = round(
        (cpu_seconds(server.pid) - cpu_before) / max(figures["requests"], 1) * 1e6, 1)
    if count_stored:
        figures["stored"] = readings_today(server) - stored_before
    return figures


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    fleet_key = secrets.token_bytes(32)
    env = {"METERMATRIX_FLEET_KEY": fleet_key.hex()}
    tz_name = evening_timezone()
    per_round = int(args.max_rps * args.seconds)
    files = prepare_packets(work, fleet_key, tz_name, args.rounds + 2, per_round)
    script = work / "post_packets.lua"
    script.write_text(WRK_SCRIPT)
    real = start_server(work / "data", tz_name, env=env)
    bare_port = free_port()
    bare = start_child([sys.executable, __file__, "--bare-server", str(bare_port)],
                       work / "bare.log", bare_port)
    bare.wait_ready()
    rounds: dict[str, list[dict[str, float]]] = {"real": [], "bare": []}
    try:
        run_wrk(bare.url, files[0], script, 2, args.connections)  # warm-up
        measure(real, files[0], script, 2, args.connections, count_stored=False)
        if args.profile is not None:
            for name, server in (("bare", bare), ("real", real)):
                spy = py_spy_record(server.pid, args.seconds, args.profile / f"{name}.txt")
                measure(server, files[-1], script, args.seconds, args.connections, False)
                spy.wait()
        for index in range(args.rounds):
            order = [("bare", bare), ("real", real)]
            for name, server in order if index % 2 == 0 else order[::-1]:
                figures = measure(server, files[index + 1], script, args.seconds,
                                  args.connections, count_stored=name == "real")
                rounds[name].append(figures)
                print(f"round {index + 1} {name}: {figures['requests_per_s']:.0f} req/s, "
                      f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, "
                      f"{figures['server_cpu_us_per_request']:.0f} us CPU/request", flush=True)
    finally:
        real.stop()
        bare.process.terminate()
        bare.process.wait()
    return summarise(rounds, args, tz_name)


def summarise(rounds: dict[str, list[dict[str, float]]], args: argparse.Namespace,
              tz_name: str) -> dict[str, object]:
    def med(name: str, key: str) -> float:
        return round(median([r[key] for r in rounds[name]]), 3)

    real_rps, bare_rps = med("real", "requests_per_s"), med("bare", "requests_per_s")
    refused = sum(r["non_2xx"] + r["socket_errors"] for r in rounds["real"] + rounds["bare"])
    not_stored = sum(r["requests"] - r["stored"] for r in rounds["real"])
    ratio = round(real_rps / bare_rps, 3)
    summary = [
        summary_row("real server /meter, requests/s", real_rps, "req/s"),
        summary_row("bare Tornado handler, requests/s", bare_rps, "req/s"),
        summary_row("ratio real / bare", ratio, "", AIM_RATIO, higher_is_better=True),
        summary_row("real server p50 / p99 latency", f"{med('real', 'p50_ms'):.1f} / "
                    f"{med('real', 'p99_ms'):.1f}", "ms"),
        summary_row("bare handler p50 / p99 latency", f"{med('bare', 'p50_ms'):.1f} / "
                    f"{med('bare', 'p99_ms'):.1f}", "ms"),
        summary_row("server CPU per request, real / bare",
                    f"{med('real', 'server_cpu_us_per_request'):.0f} / "
                    f"{med('bare', 'server_cpu_us_per_request'):.0f}", "us"),
    ]
    return {
        "summary": summary,
        "setup": {"rounds": args.rounds, "seconds_per_round": args.seconds,
                  "connections": args.connections, "wrk_threads": 1, "timezone": tz_name},
        "real_requests_per_s": real_rps,
        "bare_requests_per_s": bare_rps,
        "ratio_real_to_bare": ratio,
        "aim_ratio": AIM_RATIO,
        "real_p50_ms": med("real", "p50_ms"), "real_p99_ms": med("real", "p99_ms"),
        "bare_p50_ms": med("bare", "p50_ms"), "bare_p99_ms": med("bare", "p99_ms"),
        "real_cpu_us_per_request": med("real", "server_cpu_us_per_request"),
        "bare_cpu_us_per_request": med("bare", "server_cpu_us_per_request"),
        "refused_or_failed_requests": refused,
        "answered_but_not_stored": max(not_stored, 0),
        "rounds": rounds,
    }


def main() -> None:
    args = parse_args()
    if args.bare_server:
        serve_bare(args.bare_server)
        return
    with tempfile.TemporaryDirectory(prefix="metermatrix-bench-") as work:
        figures = run(args, Path(work))
    path = write_result("ingest", figures)
    print(f"\n/meter, single packets, {args.connections} connections, median of {args.rounds}:")
    print(f"  real server {figures['real_requests_per_s']:8.0f} req/s  "
          f"p50 {figures['real_p50_ms']:.2f} ms  p99 {figures['real_p99_ms']:.2f} ms  "
          f"{figures['real_cpu_us_per_request']:.0f} us CPU/request")
    print(f"  bare handler {figures['bare_requests_per_s']:7.0f} req/s  "
          f"p50 {figures['bare_p50_ms']:.2f} ms  p99 {figures['bare_p99_ms']:.2f} ms  "
          f"{figures['bare_cpu_us_per_request']:.0f} us CPU/request")
    print(f"  ratio {figures['ratio_real_to_bare']:.3f} (aim {AIM_RATIO:.2f})   -> {path}")
    if os.environ.get("BENCH_VERBOSE"):
        print(figures)


if __name__ == "__main__":
    main()
