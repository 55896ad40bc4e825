"""The meters that used most over some closed days (plus open days' totals), exactly, without
summing every meter's daily totals.

Each closed day's largest totals are read from the (day, energy_wh) index, ``depth`` of them
(``Storage.day_top_meters``), and the open days' per-meter totals are ranked in memory. Every
meter in one of those lists is a candidate and gets its exact sum (its own daily totals). A
meter in none of them used at most the ``depth``-th value of each list, so at most ``bound``
(the sum of those values) over the period: once the ``count``-th candidate is above it, no
other meter can be among the largest. Otherwise ``depth`` grows fourfold and the walk is
repeated; a list shorter than ``depth`` holds all of its day's meters. Where the days'
totals are so even that the walk would read more than MAX_WALKED entries, every meter's
totals are summed instead (``Storage.meter_totals_between``), as before the walk.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from metermatrix.storage import Storage

#: Entries read from each list at first, per meter asked for (and at least FIRST_DEPTH).
DEPTH_PER_METER, FIRST_DEPTH = 8, 64
#: Index entries the walk reads at most before it sums every meter's totals instead.
MAX_WALKED = 200_000


def top_meter_totals(storage: Storage, closed: Sequence[date], open_totals: pd.DataFrame,
                     count: int, regions: Sequence[str | None] = (None,)) -> pd.DataFrame:
    """The candidates' totals over ``closed`` days plus ``open_totals`` (index ``meter_id``;
    ``energy_kwh`` [kWh], ``readings``, already of ``regions`` only): index ``meter_id``;
    ``energy_kwh``, ``readings``. The ``count`` largest of all meters of ``regions``
    (None: every meter) are among them, with their exact totals."""
    depth = max(FIRST_DEPTH, DEPTH_PER_METER * count)
    known = _exact_totals(storage, closed, open_totals, [])
    while True:
        candidates, bound_kwh, exhausted = _candidates(storage, closed, open_totals, depth,
                                                       regions)
        new = [meter_id for meter_id in candidates if meter_id not in known.index]
        known = pd.concat([known, _exact_totals(storage, closed, open_totals, new)])
        totals = known
        if exhausted:
            return totals
        ranked = np.sort(totals["energy_kwh"].to_numpy())[::-1]
        if len(ranked) >= count and ranked[count - 1] > bound_kwh:
            return totals
        depth *= 4
        if depth * len(closed) * len(regions) > MAX_WALKED:
            return _summed_totals(storage, closed, open_totals, regions)


def _summed_totals(storage: Storage, closed: Sequence[date], open_totals: pd.DataFrame,
                   regions: Sequence[str | None]) -> pd.DataFrame:
    """Every meter's totals over ``closed`` plus ``open_totals`` (of ``regions``)."""
    rows = storage.meter_totals_between(min(closed), max(closed))
    array = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    frame = pd.DataFrame({"energy_kwh": array[:, 1] / 1000, "readings": array[:, 2]},
                         index=pd.Index(array[:, 0], name="meter_id"))
    if None not in regions:
        wanted = {meter.meter_id for region in regions for meter in storage.list_meters(region)}
        frame = frame[frame.index.isin(list(wanted))]
    if len(open_totals):
        frame = frame.add(open_totals, fill_value=0)
    frame["readings"] = frame["readings"].astype("int64")
    return frame


def _candidates(storage: Storage, closed: Sequence[date], open_totals: pd.DataFrame,
                depth: int, regions: Sequence[str | None]) -> tuple[list[int], float, bool]:
    """(candidate meters, the most any other meter can have used [kWh], every list read
    to its end)."""
    found: set[int] = set()
    bounds_kwh = []
    exhausted = True
    for region in regions:
        bound_kwh = 0.0
        for day in closed:
            rows = storage.day_top_meters(day, depth, region)
            found.update(meter_id for meter_id, _ in rows)
            if len(rows) == depth:
                bound_kwh += rows[-1][1] / 1000
                exhausted = False
        bounds_kwh.append(bound_kwh)
    if len(open_totals):
        ranked = open_totals.nlargest(depth, "energy_kwh", keep="first")
        found.update(int(meter_id) for meter_id in ranked.index)
        if len(open_totals) > depth:
            bounds_kwh = [bound + float(ranked["energy_kwh"].iloc[-1]) for bound in bounds_kwh]
            exhausted = False
    return sorted(found), max(bounds_kwh, default=0.0), exhausted


def _exact_totals(storage: Storage, closed: Sequence[date], open_totals: pd.DataFrame,
                  meter_ids: list[int]) -> pd.DataFrame:
    """The exact totals of some meters: their closed days' totals plus ``open_totals``."""
    frame = pd.DataFrame({"energy_kwh": 0.0, "readings": 0},
                         index=pd.Index(meter_ids, dtype=np.int64, name="meter_id"))
    if closed and meter_ids:
        wanted = set(closed)
        rows = [(t.meter_id, t.energy_wh / 1000, t.readings)
                for t in storage.daily_totals_between(meter_ids, min(closed), max(closed))
                if t.day in wanted]
        if rows:
            closed_totals = pd.DataFrame(rows, columns=["meter_id", "energy_kwh", "readings"]
                                         ).groupby("meter_id").sum()
            frame = frame.add(closed_totals, fill_value=0)
    if len(open_totals):
        frame = frame.add(open_totals.reindex(frame.index, fill_value=0), fill_value=0)
    frame["readings"] = frame["readings"].astype("int64")
    return frame
