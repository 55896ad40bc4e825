"""Run every benchmark in ``bench/`` and write the table of figures in ``bench/README.md``.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--table-only] [--city]

Each ``bench/<name>.py`` (not starting with ``_``) runs in its own process and writes
``bench/results/<name>.json``. The table lists each result's ``summary`` rows
(``figure``, ``value``, ``unit``, ``aim``, ``met``; see ``_common.summary_row``) or, for a
result without one, its top-level figures. Nothing is asserted: a figure that misses its
aim is marked, not failed. ``--city`` runs the city-scale benchmarks at Singapore's
1.4 million meters (``make bench BENCH=--city``; an hour or more, each deletes its data
folder when done): those taking ``--meters`` with ``--meters 1400000``, the dashboards
with ``--city`` (30 closed days of every meter's half-hourly rows).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
#: Benchmarks run at 1.4 M meters with ``--city``, and the arguments that ask for it.
CITY_SCALE = {"cityscale": ["--meters", "1400000"], "firstpage": ["--meters", "1400000"],
              "singapore": ["--meters", "1400000"], "dashboards": ["--city"],
              "dayclose": ["--history-meters", "1400000", "--history-days", "365"]}


def benchmarks() -> list[str]:
    """Names of the benchmark scripts present, in a stable order."""
    names = [path.stem for path in BENCH.glob("*.py")
             if not path.stem.startswith("_") and path.stem != "run_all"]
    preferred = ["ingest", "dayclose", "consumption", "dashboards"]
    return sorted(names, key=lambda name: (preferred.index(name) if name in preferred
                                           else len(preferred), name))


def run_benchmark(name: str, extra: list[str]) -> dict[str, object]:
    """Run ``bench/<name>.py``; its exit status and how long it took."""
    print(f"\n=== {name} {' '.join(extra)} ===", flush=True)
    started = time.monotonic()
    status = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *extra],
                            cwd=ROOT).returncode
    return {"name": name, "status": status, "minutes": (time.monotonic() - started) / 60}


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summary_rows(result: dict[str, object]) -> list[dict[str, object]]:
    """The result's summary rows, or one row per top-level scalar figure."""
    summary = result.get("summary")
    if isinstance(summary, list):
        return [row for row in summary if isinstance(row, dict)]
    skip = {"benchmark", "machine", "summary"}
    return [{"figure": key, "value": value} for key, value in result.items()
            if key not in skip and isinstance(value, int | float | str | bool)]


def table(names: list[str], runs: dict[str, dict[str, object]]) -> str:
    """The markdown table of every benchmark's figures against its aims."""
    lines = ["| benchmark | figure | measured | aim | met |", "|---|---|---|---|---|"]
    machines = set()
    for name in names:
        run = runs.get(name)
        if run is not None and run["status"] != 0:
            lines.append(f"| {name} | run failed (exit {run['status']}) | | | |")
        if not (RESULTS / f"{name}.json").exists():
            lines.append(f"| {name} | no results yet | | | |")
            continue
        lines.extend(result_lines(name, machines))
        if (RESULTS / f"{name}-postgres.json").exists():  # the same run with --postgres
            lines.extend(result_lines(f"{name}-postgres", machines))
    lines.append("")
    lines.extend(f"Measured on {machine}." for machine in sorted(machines))
    return "\n".join(lines)


def result_lines(name: str, machines: set[str]) -> list[str]:
    """The table rows of ``bench/results/<name>.json``; adds its machine to ``machines``."""
    lines: list[str] = []
    result = json.loads((RESULTS / f"{name}.json").read_text())
    machine = result.get("machine", {})
    machines.add(f"{machine.get('cores')} cores ({machine.get('cpu')}), "
                 f"Python {machine.get('python')}, SQLite {machine.get('sqlite')}")
    for row in summary_rows(result):
        unit = f" {row['unit']}" if row.get("unit") else ""
        aim = row.get("aim")
        aim_text = "" if aim is None else f"{row.get('aim_op', '')}{format_value(aim)}{unit}"
        met = row.get("met")
        met_text = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {row['figure']} | {format_value(row['value'])}{unit} "
                     f"| {aim_text} | {met_text} |")
    return lines


def write_table(text: str) -> None:
    """Replace the results block of bench/README.md (or append one)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{START}\n_Written by `make bench` on {stamp}._\n\n{text}\n{END}"
    readme = README.read_text() if README.exists() else "# Benchmarks\n\n"
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        readme = head + block + rest.split(END, 1)[1]
    else:
        readme = readme.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", default=[], help="do not run these")
    parser.add_argument("--table-only", action="store_true",
                        help="rewrite the table from the existing results, run nothing")
    parser.add_argument("--city", action="store_true",
                        help=f"run {', '.join(CITY_SCALE)} at 1.4 million meters")
    args = parser.parse_args()
    names = benchmarks()
    chosen = [name for name in names if (args.only is None or name in args.only)
              and name not in args.skip]
    runs = {}
    if not args.table_only:
        for name in chosen:
            city = args.city and name in CITY_SCALE
            runs[name] = run_benchmark(name, CITY_SCALE[name] if city else [])
    write_table(table(names, runs))
    print(f"\ntable written to {README}")
    for run in runs.values():
        print(f"  {run['name']:<12} exit {run['status']}  {run['minutes']:.1f} min")
    return 1 if any(run["status"] != 0 for run in runs.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
