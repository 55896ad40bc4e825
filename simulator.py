"""MeterMatrix meter simulator: a fleet of meters posting signed packets to a running server.

    python simulator.py --server http://127.0.0.1:8000 --data-dir ./data      # live
    python simulator.py --server URL --data-dir DIR --backfill                 # today, then live
    python simulator.py --server URL --data-dir DIR --date 2026-11-26 --days 1 # replay
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from pathlib import Path

from metermatrix.fleet import load_fleet, synthetic_fleet
from metermatrix.loadshape import DEFAULT_SEED
from metermatrix.simulation import SimulatorConfig, simulate

HERE = Path(__file__).resolve().parent
DEFAULT_FLEET = HERE / "testing_data" / "masterDB.json"


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    """The simulator's configuration from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="server base URL, e.g. http://host:8000")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="the server's data folder (its fleet.key signs the packets)")
    fleet = parser.add_mutually_exclusive_group()
    fleet.add_argument("--fleet", type=Path, default=DEFAULT_FLEET,
                       help=f"master-database JSON naming the meters (default: {DEFAULT_FLEET})")
    fleet.add_argument("--meters", type=int, help="simulate N synthetic meters instead")
    parser.add_argument("--date", type=date.fromisoformat,
                        help="replay this local day (YYYY-MM-DD) instead of running live")
    parser.add_argument("--days", type=int, default=1, help="replay this many days (default 1)")
    parser.add_argument("--backfill", action="store_true",
                        help="live mode: first send today's slots that are already due")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"load-model and synthetic-fleet seed (default {DEFAULT_SEED})")
    parser.add_argument("--ledger", type=Path,
                        help="JSON-lines record of acknowledged packets "
                             "(default: <data-dir>/simulator-ledger.jsonl)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight at once (default 16)")
    parser.add_argument("--bulk", action="store_true",
                        help="replay through POST /meter/batch as a head-end system")
    parser.add_argument("--batch-size", type=int, default=100_000,
                        help="with --bulk: lines per batch (default 100000, at most 500000)")
    parser.add_argument("--clock-offset-s", type=float, default=0.0,
                        help="for tests only: run the simulator's clock this far ahead [s]"
                             " (give it the server's --clock-offset-s)")
    args = parser.parse_args(argv)
    if args.bulk and args.date is None:
        parser.error("--bulk replays whole days: give --date")
    if not 1 <= args.batch_size <= 500_000:
        parser.error("--batch-size must be between 1 and 500000")
    if args.days < 1 or args.concurrency < 1 or (args.meters is not None and args.meters < 1):
        parser.error("--days, --concurrency and --meters must be at least 1")
    if args.backfill and args.date is not None:
        parser.error("--backfill is for live mode; --date replays whole days")
    if args.meters is not None:
        meters = synthetic_fleet(args.meters, args.seed)
    else:
        meters = load_fleet(args.fleet)
    return SimulatorConfig(
        server=args.server, data_dir=args.data_dir, seed=args.seed,
        meter_ids=[meter.meter_id for meter in meters],
        ledger_path=args.ledger or args.data_dir / "simulator-ledger.jsonl",
        concurrency=args.concurrency, start_day=args.date, days=args.days,
        backfill=args.backfill, bulk=args.bulk, batch_size=args.batch_size,
        clock_offset_s=args.clock_offset_s,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: the exit status (replay: 0 only if nothing was refused)."""
    return asyncio.run(simulate(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
