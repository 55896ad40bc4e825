"""sorted_unique: np.unique's answer, by sorting."""

from __future__ import annotations

import numpy as np
import pytest

from metermatrix.arrays import sorted_unique


@pytest.mark.parametrize("size", [0, 1, 2, 7, 1000, 100_000])
def test_sorted_unique_is_np_unique(size: int) -> None:
    rng = np.random.default_rng(size)
    for values in (rng.integers(100_000_000, 999_999_999, size),
                   rng.integers(-3, 4, size),
                   np.repeat(np.arange(size // 2 + 1), 2)[:size]):
        got = sorted_unique(values)
        assert got.dtype == values.dtype
        assert np.array_equal(got, np.unique(values))


def test_sorted_unique_takes_lists_and_store_rows() -> None:
    assert sorted_unique([5, 3, 5, 1]).tolist() == [1, 3, 5]
    rows = np.array([4, 4, 0, 2], np.intp)
    assert sorted_unique(rows).tolist() == [0, 2, 4] and sorted_unique(rows).dtype == np.intp
