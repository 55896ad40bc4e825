"""The server's clock: the real time, or the real time shifted for tests that need an hour."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

#: Environment variable that hands the server's clock offset to its Voila kernels [s].
ENV_CLOCK_OFFSET = "METERMATRIX_CLOCK_OFFSET_S"


def utc_now() -> datetime:
    """The current instant, timezone-aware."""
    return datetime.now(UTC)


def offset_clock(offset_s: float) -> Clock:
    """A clock that reads the real time plus ``offset_s`` seconds (the real clock for 0)."""
    if offset_s == 0:
        return utc_now
    shift = timedelta(seconds=offset_s)

    def now() -> datetime:
        return datetime.now(UTC) + shift

    return now


def environment_offset_s(environ: Mapping[str, str] | None = None) -> float:
    """The clock offset in METERMATRIX_CLOCK_OFFSET_S [s], 0 when unset."""
    env = os.environ if environ is None else environ
    return float(env.get(ENV_CLOCK_OFFSET, "0") or 0)


def environment_clock(environ: Mapping[str, str] | None = None) -> Clock:
    """The clock the server handed to this process through the environment."""
    return offset_clock(environment_offset_s(environ))
