"""Meter keys and packet signatures are plain HMAC-SHA256 (RFC 2104), as meters compute them."""

from __future__ import annotations

import hashlib
import hmac

from metermatrix.signing import meter_key, sign_body, verify_signature

# RFC 4231, test case 2.
RFC_KEY = b"Jefe"
RFC_DATA = b"what do ya want for nothing?"
RFC_HMAC_SHA256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
FLEET_KEY = bytes(range(32))
BODY = b'{"id": 999999999, "timestamp": "2025-02-08T00:31:00Z", "reading_kWh": 5.5}'


def test_sign_body_is_hex_hmac_sha256() -> None:
    assert sign_body(RFC_KEY, RFC_DATA) == RFC_HMAC_SHA256


def test_meter_key_is_hmac_of_the_nine_digit_id() -> None:
    expected = hmac.new(FLEET_KEY, b"000000042", hashlib.sha256).digest()
    assert meter_key(FLEET_KEY, 42) == expected
    assert meter_key(FLEET_KEY, 42) != meter_key(FLEET_KEY, 43)


def test_a_meter_signature_verifies_for_that_meter_only() -> None:
    signature = sign_body(meter_key(FLEET_KEY, 999999999), BODY)
    assert verify_signature(FLEET_KEY, 999999999, BODY, signature)
    assert verify_signature(FLEET_KEY, 999999999, BODY, signature.upper() + "\n")
    assert not verify_signature(FLEET_KEY, 555555555, BODY, signature)
    assert not verify_signature(FLEET_KEY, 999999999, BODY + b" ", signature)
