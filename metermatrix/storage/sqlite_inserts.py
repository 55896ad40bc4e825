"""Multi-row INSERT statements for SQLite: fewer statements, fewer releases of the GIL.

The sqlite3 module lets other threads run while SQLite works, once per statement step:
a group commit written row by row makes the writer thread wait for the event loop's
thread after every row. These statements write many rows per step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache

#: Rows per multi-row INSERT, largest first (``insert_rows``).
_INSERT_SIZES = (256, 64, 16, 4, 1)


@cache
def _values_sql(head: str, width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([one] * rows)}"


#: Most rows in one ``put_open_day_rows`` statement.
OPEN_ROWS_AT_MOST = 256


@cache
def open_rows_sql(rows: int) -> str:
    """``rows`` packed rows of a day, written only if the day (the last ?) is not closed."""
    values = ", ".join(["(?, ?, ?, ?)"] * rows)
    return ("INSERT OR REPLACE INTO day_readings (day, meter_id, slots_wh, marks)"
            f" SELECT column1, column2, column3, column4 FROM (VALUES {values})"
            " WHERE NOT EXISTS (SELECT 1 FROM closed_days WHERE day = ?)")


def insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[tuple[object, ...]]) -> None:
    """``executemany(head + " VALUES (?, ...)", rows)`` as a few multi-row statements.

    ``head`` is the statement up to its VALUES (``INSERT ... (columns)``). Each statement
    executed lets other threads run while SQLite works (the GIL is released per step):
    25 rows take 4 statements here against 25 steps in ``executemany``, so the writer
    thread waits for the event loop's thread far less often in a group commit.
    """
    if not rows:
        return
    width, at = len(rows[0]), 0
    for size in _INSERT_SIZES:
        while len(rows) - at >= size:
            db.execute(_values_sql(head, width, size),
                       [value for row in rows[at:at + size] for value in row])
            at += size
