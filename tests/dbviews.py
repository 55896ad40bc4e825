"""A second, independent connection to a master database, with the readings as rows.

The database packs a meter's day into one row (metermatrix/storage/packing.py). Tests
check what was committed through plain SQL, so this connection adds two temporary views
written in SQL alone (no code of the package): ``readings`` (meter_id, day 'YYYY-MM-DD',
slot, energy_wh) unpacked from ``day_readings``, and ``day_totals`` (meter_id, day
'YYYY-MM-DD', energy_wh, readings) over ``daily_totals``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_NIBBLE = "(instr('0123456789ABCDEF', substr(h, {i}, 1)) - 1)"
_VALUE = (f"({_NIBBLE.format(i=1)} * 16 + {_NIBBLE.format(i=2)}"
          f" + ({_NIBBLE.format(i=3)} * 16 + {_NIBBLE.format(i=4)}) * 256)")

VIEWS = f"""
CREATE TEMP VIEW readings AS
  WITH RECURSIVE s (slot) AS (SELECT 0 UNION ALL SELECT slot + 1 FROM s WHERE slot < 47),
  cells AS (SELECT r.meter_id, r.day, s.slot, hex(substr(r.slots_wh, 2 * s.slot + 1, 2)) AS h
            FROM main.day_readings r CROSS JOIN s)
  SELECT meter_id, date(day * 86400, 'unixepoch') AS day, slot, {_VALUE} AS energy_wh
  FROM cells WHERE h != 'FFFF';
CREATE TEMP VIEW day_totals AS
  SELECT meter_id, date(day * 86400, 'unixepoch') AS day, energy_wh, readings
  FROM main.daily_totals;
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the database file ``path`` with the ``readings`` and ``day_totals`` views."""
    db = sqlite3.connect(path)
    db.executescript(VIEWS)
    return db
