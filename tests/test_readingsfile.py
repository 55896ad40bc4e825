"""The compact file of whole days of half-hourly readings."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from metermatrix.readingsfile import HEADER, ReadingsFileError, read_readings, write_readings
from metermatrix.storage.packing import MISSING

DAY = date(2026, 3, 17)


def test_readings_round_trip_by_day_with_missing_half_hours(tmp_path: Path):
    first = np.arange(100, 148)
    second = first.copy()
    second[5] = -1
    path = tmp_path / "readings.csv.gz"
    write_readings(path, [(555555555, DAY, first), (999999999, DAY, second),
                          (555555555, date(2026, 3, 16), first)])
    by_day = read_readings(path)
    assert list(by_day) == [date(2026, 3, 16), DAY]
    ids, values = by_day[DAY]
    assert ids.tolist() == [555555555, 999999999]
    assert values.dtype == np.uint16 and values[0].tolist() == first.tolist()
    assert values[1, 5] == MISSING and values[1, 6] == 106
    again = tmp_path / "again.csv.gz"
    write_readings(again, [(555555555, DAY, first), (999999999, DAY, second),
                           (555555555, date(2026, 3, 16), first)])
    assert again.read_bytes() == path.read_bytes()  # no timestamp in the gzip header


@pytest.mark.parametrize(("text", "reason"), [
    ("meter_id,day\n", "first line"),
    (",".join(HEADER) + "\n555555555,2026-03-17,1,2\n", "expected 50 cells"),
    (",".join(HEADER) + "\n555555555,2026-13-17" + ",1" * 48 + "\n", "month"),
    (",".join(HEADER) + "\n555555555,2026-03-17" + ",70000" * 48 + "\n", "out of range"),
])
def test_a_malformed_file_is_refused(tmp_path: Path, text: str, reason: str):
    path = tmp_path / "readings.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(ReadingsFileError, match=reason):
        read_readings(path)


def test_a_file_that_is_not_gzip_is_refused(tmp_path: Path):
    path = tmp_path / "readings.csv.gz"
    path.write_text(",".join(HEADER))
    with pytest.raises(ReadingsFileError, match="gzip"):
        read_readings(path)
