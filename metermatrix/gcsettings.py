"""The server's garbage collector, set for answering meters without pauses.

A running server holds hundreds of thousands of long-lived objects (its modules, pandas,
matplotlib, Tornado, today's store), and each packet makes a few short-lived ones with
reference cycles (futures, tasks). With Python's default thresholds the collector ran
every 700 allocations, and its full collections walked every long-lived object while
the meters waited: `bench/ingest.py` saw a `/meter` p99 of 100-135 ms against 34-48 ms
once the objects of the start are frozen (never examined again) and the youngest
generation is collected every 20,000 allocations.
"""

from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation (Python's default: 700).
YOUNG_THRESHOLD = 20_000
#: Collections of one generation before the next older one is collected (default: 10).
OLDER_THRESHOLD = 50


def settle_after_start() -> None:
    """Collect once, freeze what the start made, and collect the young less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
