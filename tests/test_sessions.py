"""Sessions in a real SQLite master database, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from metermatrix.sessions import (
    SESSION_IDLE,
    SESSION_LIFETIME,
    end_session,
    live_session,
    needs_touch,
    revoke_sessions,
    session_id,
    start_session,
    touch_session,
)
from metermatrix.storage import open_storage

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_a_session_ends_when_idle_and_at_its_lifetime_however_busy(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    token = start_session(storage, "resident:999999999", T0)
    assert live_session(storage, token, T0 + SESSION_IDLE - timedelta(seconds=1)) is not None
    assert live_session(storage, token, T0 + SESSION_IDLE) is None
    busy = start_session(storage, "resident:999999999", T0)
    moment = T0
    while moment < T0 + SESSION_LIFETIME - timedelta(hours=1):
        moment += timedelta(hours=1)
        record = live_session(storage, busy, moment)
        assert record is not None and needs_touch(record, moment)
        touch_session(storage, record, moment)
    assert live_session(storage, busy, T0 + SESSION_LIFETIME - timedelta(seconds=1))
    assert live_session(storage, busy, T0 + SESSION_LIFETIME) is None
    storage.close()


def test_only_the_tokens_hash_is_stored_and_revoking_keeps_the_named_session(
        tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    kept, other = (start_session(storage, "manager:boss", T0) for _ in range(2))
    neighbour = start_session(storage, "manager:ops", T0)
    record = storage.get_session(session_id(kept))
    assert record is not None and record.session_id != kept and record.user == "manager:boss"
    assert revoke_sessions(storage, "manager:boss", keep_token=kept) == 1
    assert live_session(storage, other, T0) is None
    assert live_session(storage, kept, T0) is not None
    end_session(storage, kept)
    assert live_session(storage, kept, T0) is None
    assert live_session(storage, neighbour, T0) is not None
    start_session(storage, "manager:ops", T0 + timedelta(days=2))  # forgets expired ones
    assert storage.get_session(session_id(neighbour)) is None
    storage.close()
