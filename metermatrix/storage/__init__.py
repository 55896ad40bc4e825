"""Master database backends behind one interface (seed 1.4): SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from metermatrix.storage.base import (
    IMPORTED_DAY,
    OUTCOMES,
    UNASSIGNED,
    DailyTotal,
    MeterRecord,
    Outcome,
    Reading,
    RegionDay,
    SessionRecord,
    Storage,
    StorageError,
)
from metermatrix.storage.sqlite import SQLiteStorage

__all__ = [
    "IMPORTED_DAY",
    "OUTCOMES", "UNASSIGNED", "DailyTotal", "MeterRecord", "Outcome", "Reading", "RegionDay",
    "SQLiteStorage", "SessionRecord", "Storage", "StorageError", "is_postgres_url",
    "open_storage",
]

#: The SQLite database's file name in a data folder.
SQLITE_NAME = "metermatrix.sqlite3"


def is_postgres_url(database: str | None) -> bool:
    """Whether ``database`` names a PostgreSQL database (postgresql:// or postgres://)."""
    return bool(database) and str(database).startswith(("postgresql://", "postgres://"))


def open_storage(data_dir: Path, readonly: bool = False, database: str | None = None
                 ) -> Storage:
    """The master database: PostgreSQL at ``database`` (a postgresql:// URL), else the
    data folder's SQLite file ``metermatrix.sqlite3``."""
    if database:
        if not is_postgres_url(database):
            raise ValueError(f"--database must be a postgresql:// URL, not {database!r}")
        from metermatrix.storage.postgres import PostgresStorage  # psycopg only when used

        return PostgresStorage(database, readonly=readonly)
    return SQLiteStorage(data_dir / SQLITE_NAME, readonly=readonly)
