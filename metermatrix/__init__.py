"""MeterMatrix: collect smart-meter readings, close each day, show consumption."""

from __future__ import annotations

__version__ = "0.1.0"
