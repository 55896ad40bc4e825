"""Passwords of residents and managers: argon2id hashes, never the password itself."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

#: Password of every demo account made from testing_data/ (named in the README).
DEMO_PASSWORD = "metermatrix-demo"
#: The demo management login.
DEMO_MANAGER = "manager"


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``password_hash`` (False for no account)."""
    if password_hash is None:
        _hasher.hash(password)  # same cost whether or not the account exists
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
