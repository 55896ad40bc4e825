"""Write the demo data, testing_data/masterDB.json and readings.csv.gz, from the load model.

Run ``python testing_data/make_masterdb.py``: the seed is fixed, so the output is the same
every time. masterDB.json follows the seed's master-database format (1.4) plus a ``region``
per meter: ``name``, ``fin_no``, ``region``, ``previous_day`` (the last day's 48
half-hourly readings [kWh] keyed by slot label) and one ``"YYYY-MM-DD": daily total [kWh]``
per day. readings.csv.gz (``metermatrix/readingsfile.py``) holds the 48 half-hourly
readings [Wh] of every one of those meter-days; each total is their exact sum.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import orjson

from metermatrix.fleet import REGIONS, Meter, synthetic_fleet
from metermatrix.loadshape import DEFAULT_SEED, fleet_day_energy_wh
from metermatrix.readingsfile import write_readings
from metermatrix.slots import SLOT_LABELS

SEED = DEFAULT_SEED
LAST_DAY = date(2026, 11, 26)
DAYS = 120
SYNTHETIC_METERS = 40
#: How many meters have a few days missing (outages, a replaced meter, a lost backhaul).
METERS_WITH_GAPS = 5
#: The two residents of the seed's example.
SEED_PEOPLE = (
    Meter(999_999_999, "Aashima", "A3389127I", "West"),
    Meter(555_555_555, "Carlos", "A1234567I", "East"),
)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "masterDB.json"
DEFAULT_READINGS = DEFAULT_OUTPUT.with_name("readings.csv.gz")


def demo_fleet() -> list[Meter]:
    """The seed's two residents followed by the synthetic meters, by id."""
    seed_ids = {meter.meter_id for meter in SEED_PEOPLE}
    others = [m for m in synthetic_fleet(SYNTHETIC_METERS, SEED) if m.meter_id not in seed_ids]
    if {meter.region for meter in others} != set(REGIONS):
        raise RuntimeError("the synthetic meters do not cover all five regions")
    return [*SEED_PEOPLE, *others]


def missing_days(fleet: list[Meter], days: list[date]) -> dict[int, set[date]]:
    """A few meters, not the seed's residents, with one to six days missing (never the last)."""
    rng = np.random.default_rng(SEED)
    chosen = rng.choice(np.arange(len(SEED_PEOPLE), len(fleet)), METERS_WITH_GAPS, replace=False)
    gaps: dict[int, set[date]] = {}
    for index in sorted(chosen.tolist()):
        count = int(rng.integers(1, 7))
        start = int(rng.integers(0, len(days) - count - 1))
        if rng.random() < 0.5:  # one outage of several days in a row
            picked = range(start, start + count)
        else:  # scattered single days
            picked = rng.choice(len(days) - 1, count, replace=False).tolist()
        gaps[fleet[index].meter_id] = {days[i] for i in picked}
    return gaps


def fleet_readings_wh(fleet: list[Meter], days: list[date]) -> np.ndarray:
    """The load model's readings [Wh]: shape (days, meters, 48)."""
    ids = np.array([meter.meter_id for meter in fleet])
    return np.stack([fleet_day_energy_wh(ids, day, SEED) for day in days])


def build_masterdb(fleet: list[Meter], days: list[date],
                   readings_wh: np.ndarray) -> dict[str, dict[str, object]]:
    """The master database for ``fleet`` over ``days`` (oldest first) as a JSON-ready dict."""
    gaps = missing_days(fleet, days)
    masterdb: dict[str, dict[str, object]] = {}
    for column, meter in enumerate(fleet):
        last_wh = readings_wh[-1, column].tolist()
        record: dict[str, object] = {
            "name": meter.name,
            "fin_no": meter.fin_no,
            "region": meter.region,
            "previous_day": {
                label: energy_wh / 1000
                for label, energy_wh in zip(SLOT_LABELS, last_wh, strict=True)
            },
        }
        for row in reversed(range(len(days))):
            if days[row] not in gaps.get(meter.meter_id, set()):
                total_wh = int(readings_wh[row, column].sum())
                record[days[row].isoformat()] = total_wh / 1000
        masterdb[f"{meter.meter_id:09d}"] = record
    return masterdb


def history_rows(fleet: list[Meter], days: list[date], readings_wh: np.ndarray
                 ) -> list[tuple[int, date, np.ndarray]]:
    """(meter_id, day, 48 readings [Wh]) of every meter-day with a total, by meter, by day."""
    gaps = missing_days(fleet, days)
    return [(meter.meter_id, day, readings_wh[row, column])
            for column, meter in enumerate(fleet)
            for row, day in enumerate(days) if day not in gaps.get(meter.meter_id, set())]


def main(argv: list[str] | None = None) -> None:
    """Write masterDB.json to --output and the half-hourly readings to --readings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the JSON (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--readings", type=Path, default=DEFAULT_READINGS,
                        help=f"where to write the readings (default: {DEFAULT_READINGS})")
    args = parser.parse_args(argv)
    days = [LAST_DAY - timedelta(days=offset) for offset in reversed(range(DAYS))]
    fleet = demo_fleet()
    readings_wh = fleet_readings_wh(fleet, days)
    masterdb = build_masterdb(fleet, days, readings_wh)
    args.output.write_bytes(orjson.dumps(masterdb, option=orjson.OPT_INDENT_2) + b"\n")
    write_readings(args.readings, history_rows(fleet, days, readings_wh))


if __name__ == "__main__":
    main()
