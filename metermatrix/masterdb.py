"""The seed's master database JSON (1.4), with a ``region`` per meter: import and export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from metermatrix.readingsfile import read_readings
from metermatrix.slots import SLOT_LABELS, slot_of_label
from metermatrix.storage import DailyTotal, MeterRecord, Reading, Storage

_OWNER_FIELDS = frozenset({"name", "fin_no", "region", "previous_day"})


class MasterFileError(ValueError):
    """A master database JSON file that cannot be imported."""


def _kwh_to_wh(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise MasterFileError(f"{where}: expected a non-negative number of kWh, got {value!r}")
    return round(value * 1000)


def read_master(path: Path) -> dict[str, dict[str, Any]]:
    """Parse and shape-check a master database JSON file."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise MasterFileError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise MasterFileError(f"{path}: expected an object keyed by meter id")
    for key, entry in data.items():
        if not key.isdigit() or not 0 < int(key) <= 999_999_999 or not isinstance(entry, dict):
            raise MasterFileError(f"{path}: {key!r} is not a meter id with an object")
    return data


def latest_day(entry: dict[str, Any]) -> date | None:
    """The newest date key of one meter's entry (the day ``previous_day`` belongs to)."""
    days = [date.fromisoformat(key) for key in entry if key not in _OWNER_FIELDS]
    return max(days) if days else None


def import_master(storage: Storage, path: Path, shift_days: int = 0,
                  readings: Path | None = None) -> int:
    """Load meters, daily totals and previous-day readings; returns meters imported.

    ``shift_days`` moves every date (the demo data is shifted to end yesterday).
    ``readings``, a ``readingsfile`` of whole days, adds their half-hourly readings: each
    such day's totals must be their sums, and each such day is closed from them.
    """
    data = read_master(path)
    shift = timedelta(days=shift_days)
    totals: list[DailyTotal] = []
    previous: list[Reading] = []
    with storage.transaction():
        for key, entry in data.items():
            meter_id = int(key)
            storage.save_meter(MeterRecord(meter_id, entry.get("name"), entry.get("fin_no"),
                                           entry.get("region")))
            totals.extend(_entry_totals(key, entry, shift))
            previous.extend(_previous_day(key, entry, shift))
        history = _put_history(storage, data, readings, shift) if readings else []
        totals = _without_stored_readings(storage, totals)
        storage.add_readings(previous)
        storage.import_daily_totals(totals)
        for day in history:
            storage.close_day_from_readings(day)
    return len(data)


def _entry_totals(key: str, entry: dict[str, Any], shift: timedelta) -> list[DailyTotal]:
    return [DailyTotal(int(key), date.fromisoformat(field) + shift,
                       _kwh_to_wh(value, f"{key}/{field}"), 48)
            for field, value in entry.items() if field not in _OWNER_FIELDS]


def _previous_day(key: str, entry: dict[str, Any], shift: timedelta) -> list[Reading]:
    last = latest_day(entry)
    found = []
    for label, value in (entry.get("previous_day") or {}).items():
        if last is None:
            raise MasterFileError(f"{key}: previous_day without any daily total")
        found.append(Reading(int(key), last + shift, slot_of_label(label),
                             _kwh_to_wh(value, f"{key}/previous_day/{label}")))
    return found


def _put_history(storage: Storage, data: dict[str, dict[str, Any]], readings: Path,
                 shift: timedelta) -> list[date]:
    """Store the readings file's days (shifted); returns them, oldest first."""
    known = {int(key) for key in data}
    days = []
    for day, (meter_ids, values) in read_readings(readings).items():
        unknown = sorted(set(meter_ids.tolist()) - known)
        if unknown:
            raise MasterFileError(f"{readings}: {day} has meters the master file lacks:"
                                  f" {unknown[:5]}")
        storage.put_day_rows(day + shift, meter_ids.tolist(), values)
        days.append(day + shift)
    return days


def _without_stored_readings(storage: Storage, totals: list[DailyTotal]) -> list[DailyTotal]:
    """The totals of meter-days without stored readings: a day with readings is totalled
    from them. MasterFileError when the file's total differs from those readings' sum."""
    by_day: dict[date, list[DailyTotal]] = {}
    for total in totals:
        by_day.setdefault(total.day, []).append(total)
    kept: list[DailyTotal] = []
    for day, of_day in sorted(by_day.items()):
        held = {meter_id: (wh, n) for meter_id, wh, n in storage.meter_day_readings(day)}
        for total in of_day:
            found = held.get(total.meter_id)
            if found is None:
                kept.append(total)
            elif found[0] != total.energy_wh:
                raise MasterFileError(
                    f"{total.meter_id:09d}/{day}: the file's total of {total.energy_wh / 1000}"
                    f" kWh differs from the {found[0] / 1000} kWh of the {found[1]} readings"
                    " stored for that day")
    return kept


def iter_export(storage: Storage) -> Iterator[tuple[str, dict[str, Any]]]:
    """(meter id, seed 1.4 entry plus region) for every meter."""
    closed = storage.closed_days()
    first, last = (closed[0], closed[-1]) if closed else (date.min, date.min)
    for meter in storage.list_meters():
        entry: dict[str, Any] = {"name": meter.name, "fin_no": meter.fin_no,
                                 "region": meter.region, "previous_day": {}}
        if closed:
            for reading in storage.readings_between([meter.meter_id], last, last):
                entry["previous_day"][SLOT_LABELS[reading.slot]] = reading.energy_wh / 1000
            for total in reversed(storage.daily_totals_between([meter.meter_id], first, last)):
                entry[total.day.isoformat()] = total.energy_wh / 1000
        yield f"{meter.meter_id:09d}", entry


def export_master(storage: Storage) -> bytes:
    """The whole master database as the seed's JSON (1.4) with ``region`` per meter."""
    return orjson.dumps(dict(iter_export(storage)), option=orjson.OPT_INDENT_2)
