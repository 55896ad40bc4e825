"""Demo data: testing_data/ loaded into an empty data folder, with logins.

``masterDB.json`` gives the meters and 120 days of daily totals, ``readings.csv.gz`` the
same days' half-hourly readings (``readingsfile``); both are shifted to end yesterday, so
every period a dashboard offers ("last month" included) has its readings.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD, hash_password
from metermatrix.masterdb import import_master, latest_day, read_master
from metermatrix.storage import Storage

log = logging.getLogger(__name__)

#: The demo fleet, committed with the script that makes it.
DEMO_FILE = Path(__file__).resolve().parents[1] / "testing_data" / "masterDB.json"
#: The demo fleet's half-hourly readings of the same days.
DEMO_READINGS = DEMO_FILE.with_name("readings.csv.gz")


def load_demo(storage: Storage, yesterday: date, path: Path = DEMO_FILE,
              readings: Path | None = DEMO_READINGS) -> int:
    """Import ``path`` and ``readings`` shifted to end ``yesterday``, with demo resident and
    manager logins.

    Does nothing (returns 0) when the database already has meters.
    """
    if storage.list_meters():
        return 0
    data = read_master(path)
    last = max(day for entry in data.values() if (day := latest_day(entry)) is not None)
    meters = import_master(storage, path, shift_days=(yesterday - last).days,
                           readings=readings)
    password_hash = hash_password(DEMO_PASSWORD)
    with storage.transaction():
        for key in data:
            storage.add_resident(int(key), password_hash)
        storage.set_manager(DEMO_MANAGER, password_hash)
    log.info("demo data: %d meters from %s, shifted to end %s", meters, path, yesterday)
    return meters


def demo_yesterday(open_day: date) -> date:
    """The last closed day the demo data should end on."""
    return open_day - timedelta(days=1)
