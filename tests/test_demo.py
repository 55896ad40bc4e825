"""The demo data as `make run` loads it: 120 days of half-hourly readings up to yesterday."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from metermatrix.demo import DEMO_FILE, load_demo
from metermatrix.masterdb import latest_day, read_master
from metermatrix.periods import resolve_period
from metermatrix.storage import Storage, open_storage

YESTERDAY = date(2026, 3, 17)
DAYS = 120


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(tmp_path / "data")
    load_demo(store, YESTERDAY)
    yield store
    store.close()


def file_totals_wh(yesterday: date) -> dict[tuple[int, date], int]:
    """(meter, day) -> the master file's total [Wh], shifted to end ``yesterday``."""
    data = read_master(DEMO_FILE)
    last = max(day for entry in data.values() if (day := latest_day(entry)) is not None)
    shift = yesterday - last
    return {(int(key), date.fromisoformat(field) + shift): round(value * 1000)
            for key, entry in data.items() for field, value in entry.items()
            if field[:1].isdigit()}


def test_each_of_the_last_120_days_has_48_readings_per_meter_summing_to_its_total(storage):
    totals = file_totals_wh(YESTERDAY)
    meters = [meter.meter_id for meter in storage.list_meters()]
    gaps = 0
    for back in range(DAYS):
        day = YESTERDAY - timedelta(days=back)
        held = {meter_id: (wh, n) for meter_id, wh, n in storage.meter_day_readings(day)}
        closed = {t.meter_id: t for t in storage.daily_totals_between(meters, day, day)}
        for meter_id in meters:
            if (meter_id, day) not in totals:  # one of the few days a meter was out
                assert meter_id not in held and meter_id not in closed
                gaps += 1
                continue
            assert held[meter_id] == (totals[(meter_id, day)], 48), (meter_id, day)
            assert closed[meter_id].energy_wh == totals[(meter_id, day)]
            assert closed[meter_id].readings == 48
    assert 0 < gaps <= 5 * 6
    assert storage.closed_days() == [YESTERDAY - timedelta(days=back)
                                     for back in reversed(range(DAYS))]


@pytest.mark.parametrize("today", [date(2026, 3, 1), date(2026, 3, 31), date(2027, 1, 1)])
def test_last_month_is_full_whatever_the_day(tmp_path: Path, today: date):
    """The demo follows the clock: on any day, last month has every half hour of the
    seed's two residents."""
    store = open_storage(tmp_path / "data")
    load_demo(store, today - timedelta(days=1))
    now = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=12)
    period = resolve_period("prev-month", now, ZoneInfo("UTC"))
    readings = store.readings_between([999999999, 555555555], period.first_day,
                                      period.last_day)
    assert len(readings) == 2 * 48 * len(period.days())
    store.close()
