"""Make a data folder with the landed release (schema 1) for the migration test."""
import sys
from datetime import date
from pathlib import Path

from metermatrix.demo import load_demo
from metermatrix.storage import Reading, open_storage

out = Path(sys.argv[1])
s = open_storage(out)
load_demo(s, date(2026, 11, 30))
# two days of half-hourly readings: one closed, one open; a late reading of a closed day
with s.transaction():
    s.add_readings([Reading(999999999, date(2026, 12, 1), slot, 100 + slot) for slot in range(48)])
    s.add_readings([Reading(555555555, date(2026, 12, 1), slot, 200) for slot in range(0, 48, 2)])
    s.add_readings([Reading(999999999, date(2026, 12, 2), slot, 300 + slot) for slot in range(10)])
s.close_day_from_readings(date(2026, 12, 1))
with s.transaction():
    assert s.store_reading(Reading(555555555, date(2026, 12, 1), 1, 77)) == "stored"
s.close()
