"""Array helpers numpy has, but slowly for meter ids.

numpy 2.3 and later find ``np.unique(ids)`` (no index, inverse or counts asked for) with a
hash table. On this project's arrays of meter ids and store rows that is 10 to 15 times
slower than sorting: 1.3 s against 0.1 s for 1.4 M ids.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def sorted_unique(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The distinct values, ascending (``np.unique(values)``, by sorting)."""
    ordered = np.sort(np.asarray(values).reshape(-1), kind="stable")
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    result: npt.NDArray[np.int64] = ordered[keep]
    return result
