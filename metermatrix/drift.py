"""Clock drift: do the meters' packets of the last half hour agree with the server clock?

A server clock that runs days fast files real-time packets as late ones, and nothing
else would say so. Each accepted packet's timestamp is compared with the server clock
when it arrives; when most packets of the last half hour disagree by more than the drift
tolerance, the server's clock (or the fleet's) is probably wrong: a warning is logged
(at most every ``warn_every_s``) and ``/api/v1/status`` shows it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from metermatrix.clock import Clock

log = logging.getLogger(__name__)

#: The window of packets looked at [s].
WINDOW_S = 30 * 60
#: Fewer packets than this in the window say nothing about the clock.
MIN_PACKETS = 10
#: The warning is logged at most this often [s].
WARN_EVERY_S = 10 * 60


class ClockDrift:
    """Counts, per minute of the server clock, packets that agree and disagree with it."""

    def __init__(self, tolerance_s: float, clock: Clock, min_packets: int = MIN_PACKETS,
                 warn_every_s: float = WARN_EVERY_S) -> None:
        self.tolerance_s = tolerance_s
        self.clock = clock
        self.min_packets = min_packets
        self.warn_every_s = warn_every_s
        #: minute (Unix time // 60) -> [packets, disagreeing, sum of their offsets in s]
        self._minutes: dict[int, list[float]] = {}
        self._warned_at = -float("inf")

    def observe(self, timestamp: datetime) -> None:
        """Count one accepted packet sent at ``timestamp`` (its meter's clock).

        Called for every packet: the window is trimmed when a minute begins, and only a
        disagreeing packet can make it drift, so only one looks at the whole window.
        """
        now = self.clock()
        offset_s = (timestamp - now).total_seconds()
        minute = int(now.timestamp()) // 60
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = [0, 0, 0.0]
            self._forget_before(minute - WINDOW_S // 60)
        bucket[0] += 1
        if abs(offset_s) > self.tolerance_s:
            bucket[1] += 1
            bucket[2] += offset_s
            if now.timestamp() - self._warned_at >= self.warn_every_s and self.drifting():
                self._warned_at = now.timestamp()
                log.warning("clock drift: %s", self.describe())

    def _forget_before(self, minute: int) -> None:
        for old in [key for key in self._minutes if key < minute]:
            del self._minutes[old]

    def _window(self) -> tuple[int, int, float]:
        self._forget_before(int(self.clock().timestamp()) // 60 - WINDOW_S // 60)
        packets = sum(int(bucket[0]) for bucket in self._minutes.values())
        disagreeing = sum(int(bucket[1]) for bucket in self._minutes.values())
        offsets_s = sum(bucket[2] for bucket in self._minutes.values())
        return packets, disagreeing, offsets_s

    def drifting(self) -> bool:
        """True when most packets of the last half hour disagree with the server clock."""
        packets, disagreeing, _ = self._window()
        return packets >= self.min_packets and disagreeing * 2 > packets

    def describe(self) -> str:
        """One sentence on the state of the clocks."""
        packets, disagreeing, offsets_s = self._window()
        mean_h = offsets_s / disagreeing / 3600 if disagreeing else 0.0
        return (f"{disagreeing} of {packets} packets of the last half hour disagree with the "
                f"server clock by more than {self.tolerance_s / 60:g} minutes (on average "
                f"{mean_h:+.2f} h): check the server's clock")

    def status(self) -> dict[str, Any]:
        """The drift state for /api/v1/status."""
        packets, disagreeing, _ = self._window()
        drifting = self.drifting()
        return {"warning": self.describe() if drifting else None, "packets": packets,
                "disagreeing": disagreeing, "tolerance_s": self.tolerance_s,
                "server_time": self.clock().isoformat(timespec="seconds")}
