"""Rate-limited logging: a message repeated many times a second is written once per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: How long the same message is held back after it was written [s].
REPEAT_INTERVAL_S = 10.0
#: Distinct messages remembered; past this the memory starts afresh.
MAX_KEYS = 1000


class RepeatFilter(logging.Filter):
    """Lets each warning or error (logger, text, exception type) through once per interval,
    counting the rest; info and debug lines all pass.

    A refused ``accept`` (EMFILE) or a failing disk can repeat the same error thousands of
    times a second; one line per interval with a count says as much without filling the disk.
    """

    def __init__(self, interval_s: float = REPEAT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True to write ``record``; False while the same warning or error was written recently."""
        if record.levelno < logging.WARNING:
            return True
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        message = record.getMessage()
        key = (record.name, message, error)
        now = self.clock()
        written_at, held = self._seen.get(key, (-float("inf"), 0))
        if now - written_at < self.interval_s:
            self._seen[key] = (written_at, held + 1)
            return False
        if len(self._seen) >= MAX_KEYS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg, record.args = f"{message} [repeated {held} more times, held back]", None
        return True

def limit_repeats(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (the root logger by default) its own RepeatFilter."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(RepeatFilter())
