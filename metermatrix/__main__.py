"""``python -m metermatrix``: the operator command, for machines without the console script."""

from __future__ import annotations

from metermatrix.cli import run

run()
