"""The meters that used most over some closed days (plus open days' totals), exactly.

Every meter's use over the closed days is summed from each day's totals read as columns
(``Storage.day_total_columns``: one row per day, not one per meter and day), then the open
days' per-meter totals are added and the largest are picked in numpy. A month at 1.4 M
meters is 30 reads of some 18 MB and 30 vector additions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from metermatrix.storage import Storage

#: (meter_ids ascending, energy_wh, readings) summed over some days.
Sums = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]
#: Which of some meter ids to rank (None: all of them).
MeterFilter = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.bool_]] | None


def closed_meter_sums(storage: Storage, closed: Sequence[date]) -> Sums:
    """Every meter's (energy_wh, readings) summed over the ``closed`` days."""
    total: Sums = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    for day in sorted(closed, reverse=True):  # the latest day has most meters
        total = add_sums(total, storage.day_total_columns(day))
    return total


def add_sums(total: Sums, more: Sums) -> Sums:
    """``total`` plus ``more``, meter by meter (a meter in one only keeps its figures)."""
    ids, energy, readings = total
    more_ids, more_energy, more_readings = more
    if not len(ids):
        return more_ids, more_energy.astype(np.int64), more_readings.astype(np.int64)
    if np.array_equal(ids, more_ids):  # the usual case: the same meters every day
        return ids, energy + more_energy, readings + more_readings
    at = np.searchsorted(ids, more_ids)
    inside = at < len(ids)
    inside[inside] = ids[at[inside]] == more_ids[inside]
    if not inside.all():  # meters new to the sum: inserted in place, O(meters)
        new_ids = more_ids[~inside]
        where = np.searchsorted(ids, new_ids)
        ids = np.insert(ids, where, new_ids)
        energy, readings = np.insert(energy, where, 0), np.insert(readings, where, 0)
        at = np.searchsorted(ids, more_ids)
    else:
        energy, readings = energy.copy(), readings.copy()
    energy[at] += more_energy
    readings[at] += more_readings
    return ids, energy, readings


def top_meter_totals(storage: Storage, closed: Sequence[date], open_totals: pd.DataFrame,
                     count: int, wanted: MeterFilter = None) -> pd.DataFrame:
    """The ``count`` meters that used most over ``closed`` days plus ``open_totals`` (index
    ``meter_id``; ``energy_kwh`` [kWh], ``readings``, already of the wanted meters only),
    among the meters ``wanted`` keeps: index ``meter_id``; ``energy_kwh``, ``readings``;
    largest first, a tie in meter id order."""
    ids, energy, readings = closed_meter_sums(storage, closed)
    if wanted is not None and len(ids):
        keep = wanted(ids)
        ids, energy, readings = ids[keep], energy[keep], readings[keep]
    if len(open_totals):
        open_ids = open_totals.index.to_numpy(np.int64)
        order = np.argsort(open_ids, kind="stable")
        ids, energy, readings = add_sums((ids, energy, readings), (
            open_ids[order],
            np.rint(open_totals["energy_kwh"].to_numpy()[order] * 1000).astype(np.int64),
            open_totals["readings"].to_numpy(np.int64)[order]))
    top = _largest(energy, count)
    return pd.DataFrame({"energy_kwh": energy[top] / 1000, "readings": readings[top]},
                        index=pd.Index(ids[top], name="meter_id"))


def _largest(energy: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.intp]:
    """Positions of the ``count`` largest values, largest first, ties by position."""
    if len(energy) > count:
        threshold = np.partition(energy, len(energy) - count)[len(energy) - count]
        candidates = np.flatnonzero(energy >= threshold)
    else:
        candidates = np.arange(len(energy))
    order = np.lexsort((candidates, -energy[candidates]))
    return candidates[order][:count]
