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


#: The same views over a PostgreSQL database, plus the small tables with their days as
#: 'YYYY-MM-DD' text, so that one test's SQL reads either backend.
PG_VIEWS = """
CREATE TEMP VIEW readings AS
  SELECT r.meter_id, to_char(date '1970-01-01' + r.day, 'YYYY-MM-DD') AS day, s AS slot,
         get_byte(r.slots_wh, 2 * s) + 256 * get_byte(r.slots_wh, 2 * s + 1) AS energy_wh
  FROM public.day_readings r CROSS JOIN generate_series(0, 47) AS s
  WHERE substr(r.slots_wh, 2 * s + 1, 2) <> '\\xffff'::bytea;
CREATE TEMP VIEW day_totals AS
  SELECT meter_id, to_char(date '1970-01-01' + day, 'YYYY-MM-DD') AS day, energy_wh, readings
  FROM public.daily_totals;
CREATE TEMP VIEW closed_days AS
  SELECT to_char(day, 'YYYY-MM-DD') AS day, closed_at FROM public.closed_days;
CREATE TEMP VIEW region_daily AS
  SELECT region, to_char(day, 'YYYY-MM-DD') AS day, energy_wh, meters, readings
  FROM public.region_daily;
"""


class PostgresViews:
    """A second connection to a PostgreSQL database, answering sqlite3-style ``?`` SQL."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._db = psycopg.connect(url, autocommit=True)
        self._db.execute(PG_VIEWS)

    def execute(self, sql: str, params: tuple[object, ...] | list[object] = ()):  # noqa: ANN201
        """Run ``sql`` with ``?`` placeholders; the cursor has fetchone/fetchall/iteration."""
        return self._db.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PostgresViews:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect_to(data_dir: Path, database: str | None = None):  # noqa: ANN201
    """The views over a server's database: PostgreSQL at ``database``, else its SQLite file."""
    if database:
        return PostgresViews(database)
    return connect(data_dir / "metermatrix.sqlite3")
