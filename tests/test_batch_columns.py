"""A head-end batch checked as columns answers exactly as its lines checked one by one.

The reference is the rule of ``POST /meter`` applied to each line in turn (decode, check,
then ``get``/``put`` against today's store); the column path must agree on every line's
outcome and message, and leave the same readings and region sums behind.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from metermatrix.batches import _packet, parse_batch
from metermatrix.meterregions import MeterRegions
from metermatrix.packets import PacketError, PacketRules
from metermatrix.today import TodayStore

NOW = datetime(2025, 2, 8, 13, 10, tzinfo=UTC)
REGIONS = ("West", "East", "North")


def pick(rng: np.random.Generator, options: list[object]) -> object:
    return options[int(rng.integers(len(options)))]


def random_line(rng: np.random.Generator, tz: ZoneInfo) -> bytes:
    """One NDJSON line: mostly good packets, some repeated, some bad in every way."""
    meter_id: object = int(rng.integers(700_000_000, 700_000_030))
    local_now = NOW.astimezone(tz)
    slot_end = local_now.replace(minute=0 if local_now.minute < 30 else 30, second=0)
    moment = slot_end - timedelta(minutes=30 * int(rng.integers(0, 60))) + timedelta(minutes=1)
    stamp: object = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kwh: object = pick(rng, [0.25, 0.5, round(float(rng.uniform(0, 3)), 3)])
    kind = rng.random()
    if kind < 0.03:
        return b"{not json"
    if kind < 0.05:
        return b"   "
    if kind < 0.07:
        return b"[1, 2]"
    if kind < 0.10:
        meter_id = pick(rng, [0, -4, 10**10, "700000001", True, 1.5])
    elif kind < 0.13:
        stamp = pick(rng, ["yesterday", "2025-02-08T12:00:00", 12,
                            (NOW + timedelta(hours=2)).isoformat(),
                            (NOW - timedelta(days=40)).isoformat()])
    elif kind < 0.17:
        kwh = pick(rng, [-0.5, 70.0, 2, 0, "0.5", None, 5.0004999, 5.0005, 1e300])
    elif kind < 0.18:
        return b'{"id": 700000001, "timestamp": "%s", "reading_kWh": 1%s}' % (
            str(stamp).encode(), b"0" * 30)
    elif kind < 0.19:
        return orjson.dumps({"id": meter_id, "timestamp": stamp})
    elif kind < 0.21:
        return orjson.dumps({"id": meter_id, "timestamp": stamp, "reading_kWh": kwh, "x": 1})
    return orjson.dumps({"id": meter_id, "timestamp": stamp, "reading_kWh": kwh})


def line_by_line(body: bytes, rules: PacketRules, store: TodayStore
                 ) -> tuple[dict[str, int], dict[int, str]]:
    """Counts and errors as each line alone would get them, in line order."""
    counts = {"stored": 0, "duplicate": 0, "conflict": 0, "refused": 0}
    errors: dict[int, str] = {}
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            packet = _packet(orjson.loads(line), NOW, rules, {})
        except orjson.JSONDecodeError as error:
            counts["refused"] += 1
            errors[number] = f"line is not valid JSON: {error}"
            continue
        except PacketError as error:
            counts["refused"] += 1
            errors[number] = str(error)
            continue
        if packet.day != store.day:
            counts["refused"] += 1  # not today's: filed by the database, not compared here
            errors[number] = "not today"
            continue
        held = store.get(packet.meter_id, packet.slot)
        if held is None:
            store.put(packet.meter_id, packet.slot, packet.energy_wh)
            counts["stored"] += 1
        elif held == packet.energy_wh:
            counts["duplicate"] += 1
        else:
            counts["conflict"] += 1
            errors[number] = f"stored {held}"
    return counts, errors


def in_columns(body: bytes, rules: PacketRules, store: TodayStore
               ) -> tuple[dict[str, int], dict[int, str]]:
    """The same, through ``parse_batch`` and ``TodayStore.put_many``."""
    batch = parse_batch(body, NOW, rules)
    errors = dict(batch.errors)
    today = batch.day_index == batch.days.index(store.day)
    for line in batch.lines[~today].tolist():
        errors[line] = "not today"
    put = store.put_many(batch.meter_ids[today], batch.slots[today], batch.energy_wh[today])
    offered = batch.energy_wh[today]
    lines = batch.lines[today]
    duplicate = ~put.stored & (put.kept_wh == offered)
    conflict = ~put.stored & (put.kept_wh != offered)
    for line, held in zip(lines[conflict].tolist(), put.kept_wh[conflict].tolist(), strict=True):
        errors[line] = f"stored {held}"
    counts = {"stored": int(put.stored.sum()), "duplicate": int(duplicate.sum()),
              "conflict": int(conflict.sum()), "refused": len(errors) - int(conflict.sum())}
    return counts, errors


def make_store(day: date) -> TodayStore:
    ids = np.arange(700_000_000, 700_000_030, dtype=np.int64)
    groups = {name: ids[ids % 3 == index] for index, name in enumerate(REGIONS)}
    return TodayStore(day, max_reading_wh=5000, capacity=2,
                      regions=MeterRegions(groups, lambda found: ["Unassigned"] * len(found)))


@pytest.mark.parametrize("zone", ["UTC", "Asia/Singapore"])
@pytest.mark.parametrize("seed", range(6))
def test_columns_agree_with_line_by_line(zone: str, seed: int) -> None:
    tz = ZoneInfo(zone)
    rules = PacketRules(tz, max_reading_wh=5000)
    rng = np.random.default_rng(seed)
    day = NOW.astimezone(tz).date()
    one, many = make_store(day), make_store(day)
    for _ in range(3):  # successive batches meet what earlier ones stored
        body = b"\n".join(random_line(rng, tz) for _ in range(400))
        assert in_columns(body, rules, many) == line_by_line(body, rules, one)
    assert len(many) == len(one)
    for meter_id in one.meter_ids().tolist():
        assert many.row_values(meter_id).tolist() == one.row_values(meter_id).tolist()
    assert many.reading_count() == one.reading_count()
    assert many.heard_count() == one.heard_count() > 0
    for region in (*REGIONS, "Unassigned"):
        assert [a.tolist() for a in many.region_slots(region)] == \
            [a.tolist() for a in one.region_slots(region)]


def test_a_repeated_slot_in_one_batch_is_stored_once_then_compared() -> None:
    store = make_store(date(2025, 2, 8))
    ids = np.array([700_000_001] * 4, np.int64)
    slots = np.array([5, 5, 5, 6], np.int64)
    put = store.put_many(ids, slots, np.array([100, 100, 120, 7], np.int64))
    assert put.stored.tolist() == [True, False, False, True]
    assert put.kept_wh.tolist() == [100, 100, 100, 7]
    assert put.new_meters.tolist() == [700_000_001]
    assert store.get(700_000_001, 5) == 100 and store.reading_count() == 2
