"""The compact form of a meter's day: 48 half-hourly readings packed into two blobs.

``slots_wh`` holds 48 little-endian uint16 watt-hours [Wh], 0xFFFF for a half hour
without a reading (96 bytes). ``marks`` holds how each reading arrived, 2 bits per
slot, slot 0 in the lowest bits of the first byte (12 bytes). Both are plain numpy
conversions, so a whole day of 1.4 million meters packs and unpacks in one call.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from metermatrix.slots import SLOTS_PER_DAY

#: Cell value of a half hour without a reading.
MISSING = 0xFFFF
#: Bytes of one packed day of readings.
ROW_BYTES = 2 * SLOTS_PER_DAY
#: Bytes of one day's marks.
MARK_BYTES = SLOTS_PER_DAY // 4

#: How a reading arrived (2 bits): before its day closed, after it (amending the closed
#: day), or filled in later by an estimate (kept for validation and estimation).
ON_TIME, LATE, ESTIMATED = 0, 1, 2

_EPOCH = date(1970, 1, 1)
_ROW = np.dtype("<u2")


def day_number(day: date) -> int:
    """Days since 1970-01-01: how a day is keyed in the large tables."""
    return (day - _EPOCH).days


def day_of_number(number: int) -> date:
    """The date of a ``day_number``."""
    return _EPOCH + timedelta(days=int(number))


def pack_rows(values: npt.NDArray[np.integer]) -> list[bytes]:
    """One 96-byte blob per row of a (meters, 48) matrix of Wh (MISSING where empty)."""
    data = np.ascontiguousarray(values, dtype=_ROW).tobytes()
    return [data[start:start + ROW_BYTES] for start in range(0, len(data), ROW_BYTES)]


def unpack_rows(blobs: list[bytes]) -> npt.NDArray[np.uint16]:
    """The (meters, 48) uint16 matrix of packed rows (MISSING where empty)."""
    if not blobs:
        return np.empty((0, SLOTS_PER_DAY), np.uint16)
    matrix = np.frombuffer(b"".join(blobs), _ROW).reshape(-1, SLOTS_PER_DAY)
    return matrix.astype(np.uint16)


def unpack_row(blob: bytes) -> npt.NDArray[np.uint16]:
    """One packed row as 48 uint16 values (a writable copy)."""
    return np.frombuffer(blob, _ROW).astype(np.uint16)


def pack_marks(marks: npt.NDArray[np.integer]) -> list[bytes]:
    """One 12-byte blob per row of a (meters, 48) matrix of marks (0..3)."""
    codes = np.ascontiguousarray(marks, dtype=np.uint8).reshape(-1, SLOTS_PER_DAY // 4, 4)
    packed = (codes[:, :, 0] | (codes[:, :, 1] << 2) | (codes[:, :, 2] << 4)
              | (codes[:, :, 3] << 6)).astype(np.uint8)
    data = packed.tobytes()
    return [data[start:start + MARK_BYTES] for start in range(0, len(data), MARK_BYTES)]


def unpack_marks(blob: bytes | None) -> npt.NDArray[np.uint8]:
    """The 48 marks (0..3) of one packed day; all ON_TIME for a day stored without marks."""
    if blob is None:
        return np.zeros(SLOTS_PER_DAY, np.uint8)
    packed = np.frombuffer(blob, np.uint8)
    shifts = np.array([0, 2, 4, 6], np.uint8)
    return ((packed[:, None] >> shifts[None, :]) & 3).reshape(-1).astype(np.uint8)


#: The marks of a day whose readings all arrived on time.
ALL_ON_TIME = bytes(MARK_BYTES)


def row_totals(values: npt.NDArray[np.integer]
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(energy_wh, readings) of each row of a (meters, 48) matrix."""
    present = values != MISSING
    energy = np.where(present, values, 0).sum(axis=1, dtype=np.int64)
    return energy, present.sum(axis=1, dtype=np.int64)


#: Rows summed at a time by ``group_slot_sums``: a block's sums of uint16 fit in uint32
#: (2**15 x 65535 < 2**32), and its temporary arrays stay small.
_GROUP_ROWS = 1 << 15


def group_slot_sums(codes: npt.NDArray[np.integer], groups: int,
                    values: npt.NDArray[np.integer]
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per group and slot: (energy_wh, readings) of a (meters, 48) matrix.

    ``codes[i]`` (0 .. groups - 1) is the group of row ``i``. A block of rows at a time,
    each group's rows are summed as they are, MISSING included, and the missing half
    hours taken off again: missing readings are rare, so this reads the block once.
    """
    energy = np.zeros((groups, SLOTS_PER_DAY), np.int64)
    readings = np.zeros((groups, SLOTS_PER_DAY), np.int64)
    for start in range(0, len(values), _GROUP_ROWS):
        block = np.asarray(values[start: start + _GROUP_ROWS], np.uint16)
        block_codes = np.asarray(codes[start: start + _GROUP_ROWS])
        missing = block == MISSING
        for code in np.unique(block_codes).tolist():
            rows = block_codes == code
            gone = missing[rows].sum(axis=0, dtype=np.int64)
            energy[code] += block[rows].sum(axis=0, dtype=np.uint32) - gone * int(MISSING)
            readings[code] += int(rows.sum()) - gone
    return energy, readings


def offer_slots(held_wh: npt.NDArray[np.integer], keys: npt.NDArray[np.int64],
                offered_wh: npt.NDArray[np.int64]
                ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Offer readings to cells at once, as one after the other would: (stored, kept_wh).

    ``held_wh[i]`` is what cell ``keys[i]`` holds before the call (MISSING when empty).
    The first offer of an empty cell is stored; every other offer of a cell is compared
    with what the cell then holds (``kept_wh``): a duplicate if equal, else a conflict.
    """
    order = np.argsort(keys, kind="stable")
    starts = np.ones(len(keys), bool)
    starts[1:] = keys[order][1:] != keys[order][:-1]
    first = np.empty(len(keys), np.intp)
    first[order] = order[starts][np.cumsum(starts) - 1]
    held = held_wh.astype(np.int64)
    stored = (held == MISSING) & (first == np.arange(len(keys)))
    return stored, np.where(held != MISSING, held, offered_wh[first])
