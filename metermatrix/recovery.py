"""The recovery JSON (seed 1.3): today's store written atomically, and read back.

The file has the seed's nested format, ``{"<meter_id>": {"00:31": kWh, ...}}``. It is
formatted column-wise with numpy so that 1.4 million meters take seconds, not minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from itertools import chain
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from metermatrix.slots import SLOT_LABELS, slot_of_label
from metermatrix.today import MISSING, TodayStore

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


def id_prefixes(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """``,"<id>":{`` of each meter id, 14 bytes, right-aligned as ``b',%11s:{' % b'"%d"'``."""
    rows = len(ids)
    text = np.full((rows, _ID_WIDTH), _SPACE, np.uint8)
    text[:, 0], text[:, 11], text[:, 12], text[:, 13] = ord(","), ord('"'), ord(":"), ord("{")
    digits = np.zeros((rows, 9), np.int64)
    rest = ids.copy()
    for column in range(8, -1, -1):
        rest, digits[:, column] = np.divmod(rest, 10)
    lengths = 1 + sum((ids >= 10**power).astype(np.int64) for power in range(1, 9))
    leading = np.arange(9)[None, :] < (9 - lengths)[:, None]
    text[:, 2:11] = np.where(leading, _SPACE, digits + ord("0"))
    text[np.arange(rows), 10 - lengths] = ord('"')
    return text


def format_block(
    ids: npt.NDArray[np.int64], values: npt.NDArray[np.integer], missing: int,
    cells: npt.NDArray[np.void],
) -> npt.NDArray[np.uint8]:
    """JSON members ``,"<id>":{"00:31": 0.500,...}``, a row of bytes per meter with readings.

    Every cell is one gather from ``cells`` (see cell_table); meters without a reading
    are left out, so the block may have no rows.
    """
    present = values != missing
    keep = present.any(axis=1)
    if not keep.all():
        ids, values, present = ids[keep], values[keep], present[keep]
    rows, slots = values.shape
    width = cells.dtype.itemsize
    index = np.where(present, values, cells.shape[1] - 1).astype(np.intp)
    index += (np.arange(slots) * cells.shape[1])[None, :]
    text = np.empty((rows, _ID_WIDTH + slots * width + 1), np.uint8)
    text[:, :_ID_WIDTH] = id_prefixes(ids)
    gathered = np.take(cells.reshape(-1), index)
    text[:, _ID_WIDTH:-1] = gathered.view(np.uint8).reshape(rows, slots * width)
    text[:, -1] = ord("}")
    text[np.arange(rows), _ID_WIDTH + present.argmax(axis=1) * width] = _SPACE  # first: no comma
    return text


def _blocks(store: TodayStore) -> Iterator[memoryview]:
    """The members of the snapshot object, a block of meters at a time (first without comma)."""
    ids, values = store.meter_ids(), store.matrix()
    cells = cell_table(store.ceiling_wh)
    first = True
    for start in range(0, len(ids), _CHUNK_METERS):
        stop = start + _CHUNK_METERS
        text = format_block(ids[start:stop], values[start:stop], store.missing, cells)
        block = text.reshape(-1).data
        if first and len(block):
            block, first = block[1:], False
        yield block


def iter_snapshot(store: TodayStore) -> Iterator[bytes]:
    """The seed's nested JSON of ``store`` in pieces (one block of meters at a time)."""
    yield b"{"
    for block in _blocks(store):
        yield bytes(block)
    yield b"}\n"


def write_snapshot(store: TodayStore, path: Path, database_id: str = "") -> int:
    """Write ``store`` to ``path`` atomically (temp file, fsync, rename); returns bytes.

    A meta file beside it records the day, the readings it holds and the database they
    came from, so a start can skip a file whose readings the database already holds.

    Each block written is handed to the kernel for write-back at once (fadvise), so the
    disk works while the next block is formatted and the final fsync has little left.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = flushed = 0
    try:
        with open(temporary, "wb", buffering=0) as handle:
            for piece in chain([memoryview(b"{")], _blocks(store), [memoryview(b"}\n")]):
                written += _write_all(handle.fileno(), piece)
                _start_writeback(handle.fileno(), flushed, written - flushed)
                flushed = written - len(piece)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # gone after the rename; removed after a failure
    write_meta(path, {"day": store.day.isoformat(), "readings": store.reading_count(),
                      "database_id": database_id})
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return written


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range to disk now, and not keep it cached after."""
    if hasattr(os, "posix_fadvise"):  # Linux; elsewhere the final fsync does it all
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _write_all(fd: int, data: memoryview) -> int:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])
    return done


def meta_path(path: Path) -> Path:
    """The small file beside a recovery JSON that says what it holds."""
    return path.with_name(path.stem + ".meta.json")


def write_meta(path: Path, meta: dict[str, object]) -> None:
    """Write the meta file of the recovery JSON ``path`` atomically."""
    target = meta_path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(orjson.dumps(meta))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def read_meta(path: Path) -> dict[str, object] | None:
    """The meta file of the recovery JSON ``path``, or None when absent or unreadable."""
    try:
        meta = orjson.loads(meta_path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _members(piece: bytes, path: Path) -> Iterator[tuple[int, int, int]]:
    text = piece.strip().lstrip(b",").strip()
    if not text:
        return
    try:
        data = orjson.loads(b"{" + text + b"}")
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{path} is not a recovery file: {error}") from None
    for meter_id, slots in data.items():
        if not (meter_id.isascii() and meter_id.isdigit() and 0 < int(meter_id) < 10**9):
            raise ValueError(f"{path}: {meter_id!r} is not a meter id")
        if not isinstance(slots, dict):
            raise ValueError(f"{path}: meter {meter_id} does not hold an object of readings")
        for label, kwh in slots.items():
            if isinstance(kwh, bool) or not isinstance(kwh, int | float) or not (
                    0 <= kwh * 1000 < MISSING - 0.5):  # NaN and infinity fail too
                raise ValueError(f"{path}: meter {meter_id} {label}: {kwh!r} is not a reading"
                                 f" of 0..{(MISSING - 1) / 1000} kWh")
            yield int(meter_id), slot_of_label(label), round(kwh * 1000)


def load_snapshot(path: Path, block_bytes: int = 16 << 20) -> Iterator[tuple[int, int, int]]:
    """Every (meter_id, slot, energy_wh) in a recovery JSON file, read a block at a time.

    The file is one object of objects; no inner object holds a brace, so every ``}`` but
    the last ends a meter, and the file is parsed a run of whole meters at a time: memory
    stays at a few blocks whatever the file's size. Raises ValueError on a bad file.
    """
    with open(path, "rb") as handle:
        buffer = handle.read(block_bytes).lstrip()
        if not buffer.startswith(b"{"):
            raise ValueError(f"{path} is not a recovery file: expected a JSON object")
        buffer = buffer[1:]
        while block := handle.read(block_bytes):
            buffer += block
            last = buffer.rfind(b"}")
            cut = buffer.rfind(b"}", 0, last) if last > 0 else -1
            if cut >= 0:  # keep the last brace back: it may close the whole file
                yield from _members(buffer[:cut + 1], path)
                buffer = buffer[cut + 1:]
    rest = buffer.rstrip()
    if not rest.endswith(b"}"):
        raise ValueError(f"{path} is not a recovery file: it ends before its last brace")
    yield from _members(rest[:-1], path)
