"""The routines of seed section 2, as plain functions of ``now``.

Half-hourly ingestion lives in collector.py; this module decides when the day closes,
which days a restarted server must still close, and writes recovery snapshots.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, timedelta
from pathlib import Path

from metermatrix.recovery import write_snapshot
from metermatrix.settings import Settings
from metermatrix.storage import Storage
from metermatrix.today import TodayStore

log = logging.getLogger(__name__)


def open_day_for(now: datetime, settings: Settings) -> date:
    """The day readings are being collected for at ``now``: after the close, tomorrow."""
    local = now.astimezone(settings.tz)
    if local.time() >= settings.close_at:
        return local.date() + timedelta(days=1)
    return local.date()


def next_close(now: datetime, settings: Settings) -> datetime:
    """The next daily close strictly after ``now`` (timezone-aware)."""
    local = now.astimezone(settings.tz)
    candidate = datetime.combine(local.date(), settings.close_at, settings.tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), settings.close_at,
                                     settings.tz)
    return candidate


def catch_up(storage: Storage, open_day: date) -> list[date]:
    """Close every day before ``open_day`` that has readings but was never closed."""
    missed = storage.days_with_open_readings(before=open_day)
    for day in missed:
        meters = storage.close_day_from_readings(day)
        log.info("caught up on %s: %d meters closed from stored readings", day, meters)
    return missed


def snapshot_in_child(store: TodayStore, path: Path, database_id: str = "") -> int:
    """Fork a child that writes ``store`` to ``path`` and exits; returns its pid.

    The child sees the store as it was at the fork (copy-on-write), so ingestion goes
    on in the parent without waiting for or disturbing the snapshot.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        status = 1
        try:
            os.nice(10)  # the server's requests come first on a busy machine
            write_snapshot(store, path, database_id)
            status = 0
        finally:
            os._exit(status)
    return pid


def wait_for_child(pid: int) -> bool:
    """Wait for a snapshot child; True when it succeeded."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def prune_snapshots(recovery_dir: Path, keep_days: int, today: date) -> None:
    """Delete recovery files of days more than ``keep_days`` before ``today``."""
    for path in recovery_dir.glob("recovery-*.json"):
        try:
            day = date.fromisoformat(path.stem.removeprefix("recovery-"))
        except ValueError:
            continue
        if day < today - timedelta(days=keep_days):
            path.unlink(missing_ok=True)
