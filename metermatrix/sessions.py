"""Login sessions kept in the master database: a random token in the cookie, its hash stored.

A session ends on logout, when it has been idle for ``SESSION_IDLE``, ``SESSION_LIFETIME``
after it began, or when it is revoked (password change or reset, ``metermatrix sessions
revoke``). Users are ``resident:<meter_id>`` or ``manager:<username>``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from metermatrix.storage import SessionRecord, Storage

#: A session nobody used for this long has ended.
SESSION_IDLE = timedelta(hours=2)
#: No session lasts longer than this, however busy.
SESSION_LIFETIME = timedelta(hours=24)
#: Last-seen times are written at most this often per session.
TOUCH_EVERY = timedelta(minutes=5)


def session_id(token: str) -> str:
    """The stored id of a cookie token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def resident_user(meter_id: int) -> str:
    """The session user of a resident."""
    return f"resident:{meter_id}"


def manager_user(username: str) -> str:
    """The session user of a manager."""
    return f"manager:{username}"


def start_session(storage: Storage, user: str, now: datetime) -> str:
    """Store a new session for ``user``; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    record = SessionRecord(session_id(token), user, now, now,
                           min(now + SESSION_IDLE, now + SESSION_LIFETIME))
    with storage.transaction():
        storage.delete_expired_sessions(now)
        storage.add_session(record)
    return token


def live_session(storage: Storage, token: str, now: datetime) -> SessionRecord | None:
    """The session of ``token`` if it has not ended, else None."""
    record = storage.get_session(session_id(token))
    if record is None or record.expires_at <= now:
        return None
    return record


def needs_touch(record: SessionRecord, now: datetime) -> bool:
    """True when the session's last-seen time is old enough to be written again."""
    return now - record.last_seen_at >= TOUCH_EVERY


def touch_session(storage: Storage, record: SessionRecord, now: datetime) -> None:
    """Move the session's idle expiry on from ``now`` (never past its lifetime)."""
    with storage.transaction():
        storage.touch_session(record.session_id, now,
                              min(now + SESSION_IDLE, record.created_at + SESSION_LIFETIME))


def end_session(storage: Storage, token: str) -> None:
    """End the session of ``token`` (logout)."""
    with storage.transaction():
        storage.delete_session(session_id(token))


def revoke_sessions(storage: Storage, user: str, keep_token: str | None = None) -> int:
    """End every session of ``user`` but the one of ``keep_token``; returns how many."""
    keep = session_id(keep_token) if keep_token else None
    with storage.transaction():
        return storage.delete_user_sessions(user, keep)
