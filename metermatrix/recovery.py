"""The recovery JSON (seed 1.3): today's store written atomically, and read back.

The file has the seed's nested format, ``{"<meter_id>": {"00:31": kWh, ...}}``. It is
formatted column-wise with numpy so that 1.4 million meters take seconds, not minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from metermatrix.slots import SLOT_LABELS, slot_of_label
from metermatrix.today import TodayStore

_CHUNK_METERS = 20_000


def snapshot_path(recovery_dir: Path, day: date) -> Path:
    """Where the recovery JSON of ``day`` lives."""
    return recovery_dir / f"recovery-{day.isoformat()}.json"


_SPACE = ord(" ")
_ID_WIDTH = 14  # ,"999999999":{  (shorter ids are padded with spaces before the quote)


def cell_table(max_wh: int) -> npt.NDArray[np.void]:
    """Fixed-width JSON text ``,"00:31": 0.512`` of every (slot, reading [Wh]).

    Shape (48, max_wh + 2); the last column is blank, for an empty slot. JSON allows
    the padding spaces, so a whole block of meters is one gather from this table.
    """
    width = len(str(max_wh // 1000)) + 4
    numbers = b"".join(f"{wh / 1000:{width}.3f}".encode() for wh in range(max_wh + 1))
    numbers += b" " * width
    labels = np.frombuffer(b"".join(b',"%s":' % label.encode() for label in SLOT_LABELS), np.uint8)
    table = np.full((len(SLOT_LABELS), max_wh + 2, 9 + width), _SPACE, np.uint8)
    table[:, :, 9:] = np.frombuffer(numbers, np.uint8).reshape(max_wh + 2, width)
    table[:, :-1, :9] = labels.reshape(-1, 1, 9)
    return table.view(f"V{9 + width}")[:, :, 0]


def format_chunk(
    ids: npt.NDArray[np.int64], values: npt.NDArray[np.integer], missing: int,
    cells: npt.NDArray[np.void],
) -> bytes:
    """JSON members ``,"<id>":{"00:31": 0.500,...}`` for a block of rows (see cell_table)."""
    present = values != missing
    keep = present.any(axis=1)
    if not keep.any():  # no readings in this block (e.g. just after the day close)
        return b""
    ids, values, present = ids[keep], values[keep], present[keep]
    rows, slots = values.shape
    index = np.where(present, values, cells.shape[1] - 1)
    text = cells[np.arange(slots), index].view(np.uint8).reshape(rows, slots, -1)
    text[np.arange(rows), present.argmax(axis=1), 0] = _SPACE  # no comma before the first
    prefix = np.frombuffer(
        b"".join(b',%11s:{' % (b'"%d"' % meter_id) for meter_id in ids.tolist()), np.uint8
    ).reshape(rows, _ID_WIDTH)
    closing = np.full((rows, 1), ord("}"), np.uint8)
    return np.concatenate([prefix, text.reshape(rows, -1), closing], axis=1).tobytes()


def iter_snapshot(store: TodayStore) -> Iterator[bytes]:
    """The seed's nested JSON of ``store`` in pieces (one block of meters at a time)."""
    ids, values = store.meter_ids(), store.matrix()
    cells = cell_table(store.max_reading_wh)
    yield b"{"
    first = True
    for start in range(0, len(ids), _CHUNK_METERS):
        stop = start + _CHUNK_METERS
        chunk = format_chunk(ids[start:stop], values[start:stop], store.missing, cells)
        if first and chunk:
            chunk, first = chunk[1:], False
        yield chunk
    yield b"}\n"


def write_snapshot(store: TodayStore, path: Path) -> int:
    """Write ``store`` to ``path`` atomically (temp file, fsync, rename); returns bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = 0
    with open(temporary, "wb") as handle:
        for piece in iter_snapshot(store):
            handle.write(piece)
            written += len(piece)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return written


def load_snapshot(path: Path) -> Iterator[tuple[int, int, int]]:
    """Every (meter_id, slot, energy_wh) in a recovery JSON file."""
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a recovery file: expected a JSON object")
    for meter_id, slots in data.items():
        for label, kwh in slots.items():
            yield int(meter_id), slot_of_label(label), round(kwh * 1000)
