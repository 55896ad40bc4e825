"""Meter authentication: per-meter keys derived from one fleet secret, HMAC-signed bodies."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from metermatrix.secretfile import secret_file

#: Environment variable that, when set, holds the hex fleet secret.
FLEET_KEY_ENV = "METERMATRIX_FLEET_KEY"
#: HTTP header carrying the hex HMAC-SHA256 of the raw request body.
SIGNATURE_HEADER = "X-Meter-Signature"


def load_fleet_key(data_dir: Path, create: bool = True) -> bytes:
    """The fleet secret: from $METERMATRIX_FLEET_KEY, else <data_dir>/fleet.key (made 0600)."""
    from_env = os.environ.get(FLEET_KEY_ENV)
    if from_env:
        return bytes.fromhex(from_env.strip())
    path = data_dir / "fleet.key"
    if not path.exists() and not create:
        raise FileNotFoundError(f"no fleet key at {path}; start the server once first")
    return bytes.fromhex(secret_file(path))


# hmac.new rather than the one-shot hmac.digest: the one-shot releases the GIL, and on
# the server every release lets the writer thread take it in the middle of a request.


def meter_key(fleet_key: bytes, meter_id: int) -> bytes:
    """A meter's own key: HMAC-SHA256(fleet secret, meter id as 9 ASCII digits)."""
    return hmac.new(fleet_key, f"{meter_id:09d}".encode("ascii"), hashlib.sha256).digest()


def sign_body(key: bytes, body: bytes) -> str:
    """The X-Meter-Signature value for ``body``: hex HMAC-SHA256 under the meter key."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(fleet_key: bytes, meter_id: int, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the meter's valid signature of ``body``."""
    expected = sign_body(meter_key(fleet_key, meter_id), body)
    supplied = signature.strip().lower()
    if not supplied.isascii():  # compare_digest raises TypeError on non-ASCII text
        return False
    return hmac.compare_digest(expected, supplied)
