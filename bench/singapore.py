"""A simulated Singapore day end to end: a head-end's day file ingested, closed and checked.

    python bench/singapore.py [--meters 1400000] [--batch-size 100000]

The real ``server.py`` runs in Asia/Singapore with its clock at 00:05 of day D + 1, so
day D is over; every meter's 48 half hours of D go through ``simulator.py --meters N
--date D --bulk`` (``POST /meter/batch``, two batches in flight). The server then stops
and ``metermatrix close-day --date D`` totals the day from its stored readings. Last,
every meter's total of D is compared with the sum of the readings the simulator's
ledger says were acknowledged. Aims: ingest and close under 15 minutes; the bulk rate
at least 250,000 readings/s. At 1.4 M meters the ledger is about 9 GB; the data folder
is deleted at the end. The default (``make bench``) is 100,000 meters.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import ROOT, start_server, summary_row, write_result  # noqa: E402
from metermatrix.fleet import synthetic_fleet  # noqa: E402
from metermatrix.storage import MeterRecord, open_storage  # noqa: E402

TZ = ZoneInfo("Asia/Singapore")
SEED = 2026  # the simulator's default fleet seed


def register(data_dir: Path, meters: int, database: str | None) -> None:
    """The master database knows every simulated meter and its region."""
    storage = open_storage(data_dir, database=database)
    with storage.transaction():
        for meter in synthetic_fleet(meters, SEED):
            storage.save_meter(MeterRecord(meter.meter_id, meter.name, meter.fin_no,
                                           meter.region))
    storage.close()


def clock_after(now: datetime) -> tuple[date, float]:
    """Day D and the server's clock offset [s] that puts it at 00:05 of D + 1, local."""
    local = now.astimezone(TZ)
    target = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), TZ
                              ) + timedelta(minutes=5)
    return target.date() - timedelta(days=1), (target - now).total_seconds()


def ledger_totals(path: Path) -> tuple[dict[int, int], int]:
    """Per meter, the Wh the ledger says were acknowledged; and how many readings."""
    totals: dict[int, int] = {}
    lines = 0
    with path.open("rb") as ledger:
        for line in ledger:
            entry = orjson.loads(line)
            totals[entry["id"]] = totals.get(entry["id"], 0) + entry["energy_wh"]
            lines += 1
    return totals, lines


def stored_totals(data_dir: Path, day: date, database: str | None
                  ) -> tuple[dict[int, int], int]:
    storage = open_storage(data_dir, database=database)
    rows = storage.daily_totals_between(None, day, day)
    storage.close()
    return {t.meter_id: t.energy_wh for t in rows}, sum(t.readings for t in rows)


def run(work: Path, meters: int, batch_size: int, database: str | None = None
        ) -> dict[str, object]:
    data_dir = work / "data"
    data_dir.mkdir(parents=True)
    began = time.perf_counter()
    register(data_dir, meters, database)
    figures: dict[str, object] = {"meters": meters, "register_s": time.perf_counter() - began}
    day, offset_s = clock_after(datetime.now(UTC))
    on = ["--database", database] if database else []
    server = start_server(data_dir, "Asia/Singapore", ["--clock-offset-s", str(offset_s), *on])
    ledger = work / "ledger.jsonl"
    began = time.perf_counter()
    simulator = subprocess.run(
        [sys.executable, str(ROOT / "simulator.py"), "--server", server.url, "--data-dir",
         str(data_dir), "--meters", str(meters), "--date", day.isoformat(), "--bulk",
         "--batch-size", str(batch_size), "--clock-offset-s", str(offset_s),
         "--ledger", str(ledger)], capture_output=True, text=True, check=False)
    ingest_s = time.perf_counter() - began
    print(simulator.stdout[-2000:], simulator.stderr[-2000:], flush=True)
    server.stop()
    began = time.perf_counter()
    close = subprocess.run([sys.executable, "-m", "metermatrix", "close-day", "--date",
                            day.isoformat(), "--data-dir", str(data_dir), *on],
                           capture_output=True, text=True, check=True, cwd=ROOT)
    close_s = time.perf_counter() - began
    print(close.stdout.strip(), flush=True)
    expected, acknowledged = ledger_totals(ledger)
    found, stored = stored_totals(data_dir, day, database)
    figures.update({
        "day": day.isoformat(), "readings_acknowledged": acknowledged,
        "readings_in_totals": stored, "ingest_s": ingest_s,
        "bulk_readings_per_s": acknowledged / ingest_s, "close_day_cli_s": close_s,
        "ingest_and_close_s": ingest_s + close_s, "ledger_bytes": ledger.stat().st_size,
        "totals_equal_ledger": found == expected and acknowledged == meters * 48,
        "meters_differing": sum(1 for m in expected.keys() | found.keys()
                                if expected.get(m) != found.get(m)),
    })
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true",
                        help="on PostgreSQL: a throwaway cluster (tests/pg.py)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="metermatrix-singapore-"))
    cluster = None
    try:
        if args.postgres:
            from tests.pg import Cluster, find_bin_dir

            bin_dir = find_bin_dir()
            if bin_dir is None:
                print("no PostgreSQL binaries: skipped")
                return 0
            cluster = Cluster(bin_dir).start()
        figures = run(work, args.meters, args.batch_size,
                      cluster.create_database() if cluster else None)
        figures["backend"] = "postgresql" if cluster else "sqlite"
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(figures, flush=True)
    meters = f"{args.meters:,} meters x 48" + (" on PostgreSQL" if args.postgres else "")
    figures["summary"] = [
        summary_row(f"a day of {meters}: bulk ingest + close-day", round(
            float(figures["ingest_and_close_s"]), 1), "s", aim=900),  # type: ignore[arg-type]
        summary_row("bulk readings/s through simulator.py --bulk", round(
            float(figures["bulk_readings_per_s"])), "/s", aim=250_000,  # type: ignore[arg-type]
            higher_is_better=True),
        summary_row(f"metermatrix close-day, {meters}", round(
            float(figures["close_day_cli_s"]), 2), "s", aim=10),  # type: ignore[arg-type]
        summary_row("every meter's total equals its acknowledged readings",
                    "yes" if figures["totals_equal_ledger"] else
                    f"no ({figures['meters_differing']} meters differ)"),
    ]
    write_result("singapore-postgres" if args.postgres else "singapore", figures)
    return 0 if figures["totals_equal_ledger"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
