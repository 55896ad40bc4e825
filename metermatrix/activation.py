"""Activation codes: the code a utility prints on each meter's bill, proof of ownership.

A meter's code is HMAC-SHA256(activation secret, meter id as 9 ASCII digits), its first
50 bits written as 10 characters of Crockford's base 32 (no I, L, O or U), shown as
``ABCDE-FGHJK``. The secret is 32 random bytes, hex, in ``<data-dir>/activation.key``
(made on first use, mode 0600), so no table of codes is needed. Typed codes may use
lower case, spaces and dashes; I and L are read as 1 and O as 0.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from metermatrix.secretfile import secret_file
from metermatrix.storage import MeterRecord

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})


def load_activation_key(data_dir: Path) -> bytes:
    """The activation secret of a data folder, made on first use (mode 0600)."""
    return bytes.fromhex(secret_file(data_dir / "activation.key"))


def activation_code(key: bytes, meter_id: int) -> str:
    """The meter's activation code as printed: ``ABCDE-FGHJK``."""
    digest = hmac.new(key, f"{meter_id:09d}".encode("ascii"), hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big") >> (64 - 5 * CODE_LENGTH)
    chars = [ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(CODE_LENGTH))]
    return "".join(chars[:5]) + "-" + "".join(chars[5:])


def normalise_code(text: str) -> str | None:
    """A typed code in its canonical 10 characters, or None if it cannot be one."""
    code = text.strip().upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(char not in ALPHABET for char in code):
        return None
    return code


def code_matches(key: bytes, meter_id: int, typed: str) -> bool:
    """True when ``typed`` is the meter's activation code (compared in constant time)."""
    code = normalise_code(typed) or ""
    return hmac.compare_digest(activation_code(key, meter_id).replace("-", ""), code)


def write_codes_csv(key: bytes, meters: Iterable[MeterRecord], out: TextIO) -> int:
    """CSV for bill printing: meter_id, name, region, activation_code; returns the rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["meter_id", "name", "region", "activation_code"])
    count = 0
    for meter in meters:
        writer.writerow([f"{meter.meter_id:09d}", meter.name or "", meter.region or "",
                         activation_code(key, meter.meter_id)])
        count += 1
    return count
