"""The server's collector: the start's objects frozen, the young collected less often."""

from __future__ import annotations

import gc

from metermatrix.gcsettings import OLDER_THRESHOLD, YOUNG_THRESHOLD, settle_after_start


def test_settle_after_start_freezes_the_start_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    made_at_start = [[index] for index in range(1000)]
    try:
        settle_after_start()
        assert gc.get_freeze_count() >= len(made_at_start)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
        examined = {id(obj) for obj in gc.get_objects()}  # the permanent generation is not
        assert not any(id(item) in examined for item in made_at_start)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
