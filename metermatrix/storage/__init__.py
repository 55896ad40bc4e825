"""Master database backends behind one interface (seed 1.4)."""

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
    "SQLiteStorage", "SessionRecord", "Storage", "StorageError", "open_storage",
]


def open_storage(data_dir: Path, readonly: bool = False) -> Storage:
    """The master database of a data folder (SQLite, ``metermatrix.sqlite3``)."""
    return SQLiteStorage(data_dir / "metermatrix.sqlite3", readonly=readonly)
