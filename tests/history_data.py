"""A meter with fourteen months of history and a server whose clock stands at a fixed instant.

The readings are written into the data folder before the server starts (they are older
than the late-acceptance window, so no meter could post them): every half hour from the
first day to the half hour before ``NOW``, ``100 + slot`` Wh each, except a whole missing
day and one missing half hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from metermatrix.accounts import hash_password
from metermatrix.periods import last_due_boundary
from metermatrix.slots import SLOTS_PER_DAY, interval_start
from metermatrix.storage import MeterRecord, Reading, open_storage
from tests.conftest import ServerProcess

TIMEZONE = "Asia/Singapore"
TZ = ZoneInfo(TIMEZONE)
#: The server's clock: a Wednesday, 14:10 in Singapore.
NOW = datetime(2026, 11, 18, 14, 10, tzinfo=TZ)
METER = 101_000_050
PASSWORD = "a long enough password"
FIRST_DAY = date(2025, 9, 17)  # a Wednesday
MISSING_DAY = date(2026, 6, 3)
MISSING_HALF_HOUR = (date(2026, 11, 17), 20)
#: A whole day's energy [kWh]: 100 + 101 + ... + 147 Wh.
DAY_KWH = sum(100 + slot for slot in range(SLOTS_PER_DAY)) / 1000


def energy_wh(slot: int) -> int:
    """The reading of every half hour ``slot`` [Wh]."""
    return 100 + slot


def history_readings() -> list[Reading]:
    """Every reading of the meter up to the last half hour due at ``NOW``."""
    boundary = last_due_boundary(NOW, TZ)
    readings = []
    day = FIRST_DAY
    while day <= NOW.date():
        for slot in range(SLOTS_PER_DAY):
            if day == MISSING_DAY or (day, slot) == MISSING_HALF_HOUR:
                continue
            if interval_start(day, slot, TZ) + timedelta(minutes=30) <= boundary:
                readings.append(Reading(METER, day, slot, energy_wh(slot)))
        day += timedelta(days=1)
    return readings


def seed_history(data_dir: Path) -> None:
    """The meter (East), its resident account and its readings, closed up to yesterday."""
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(data_dir)
    try:
        with storage.transaction():
            storage.save_meter(MeterRecord(METER, "Wei Ling Tan", "A3389127I", "East"))
            storage.add_readings(history_readings())
            storage.add_resident(METER, hash_password(PASSWORD))
    finally:
        storage.close()


def history_server(data_dir: Path) -> ServerProcess:
    """A started server over the seeded history, its clock at ``NOW``."""
    seed_history(data_dir)
    server = ServerProcess(data_dir, timezone=TIMEZONE)
    server.clock_offset_s = (NOW - datetime.now(UTC)).total_seconds()
    return server.start()
