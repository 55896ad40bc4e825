"""Server settings: declared once as a table of (name, default, help), built at the edge."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

#: Every setting the server understands: (name, default, help). The command line,
#: the ``Settings`` dataclass and the README table are all made from this list.
SETTINGS: list[tuple[str, object, str]] = [
    ("port", 8000, "TCP port the web server listens on"),
    ("host", "127.0.0.1", "address the web server binds to"),
    ("data_dir", "./data", "folder for everything the server writes"),
    ("timezone", "UTC", "the utility's time zone for slot labels and day boundaries"),
    ("demo", True, "load testing_data/ into an empty data folder on start"),
    ("insecure_meters", False, "accept unsigned meter packets (trusted networks only)"),
    ("late_days", 7, "how many days back a late packet is still accepted"),
    ("future_minutes", 5, "how far ahead of the server clock a timestamp may be"),
    ("drift_minutes", 10, "how far a meter clock may drift from hh:01 / hh:31"),
    ("max_reading_kwh", 50.0, "plausibility ceiling for one half-hour reading [kWh]"),
    ("snapshot_hours", 2.0, "interval between recovery JSON snapshots [h]"),
    ("close_time", "23:45", "local time at which the day is closed (HH:MM)"),
    ("tariff_sgd_per_kwh", 0.30, "tariff used for cost estimates [S$/kWh incl. GST]"),
    ("dashboards", True, "start Voila and serve the notebooks as dashboards"),
    ("voila_kernels", 2, "preheated kernels per dashboard notebook"),
]


#: Highest plausibility ceiling: today's store keeps a reading in 16 bits of watt-hours.
MAX_CEILING_KWH = 65.534


@dataclass(frozen=True)
class Settings:
    """Everything the server and routines need to know, passed down explicitly."""

    port: int = 8000
    host: str = "127.0.0.1"
    data_dir: Path = Path("./data")
    timezone: str = "UTC"
    demo: bool = True
    insecure_meters: bool = False
    late_days: int = 7
    future_minutes: int = 5
    drift_minutes: int = 10
    max_reading_kwh: float = 50.0
    snapshot_hours: float = 2.0
    close_time: str = "23:45"
    tariff_sgd_per_kwh: float = 0.30
    dashboards: bool = True
    voila_kernels: int = 2

    @property
    def tz(self) -> ZoneInfo:
        """The utility's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def max_reading_wh(self) -> int:
        """The plausibility ceiling in integer watt-hours [Wh]."""
        return round(self.max_reading_kwh * 1000)

    @property
    def close_at(self) -> time:
        """Local time of the daily close."""
        hours, minutes = self.close_time.split(":")
        return time(int(hours), int(minutes))

    @property
    def db_path(self) -> Path:
        """The master database file."""
        return self.data_dir / "metermatrix.sqlite3"

    @property
    def recovery_dir(self) -> Path:
        """Folder of the recovery JSON snapshots (seed 1.3)."""
        return self.data_dir / "recovery"

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some settings replaced."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per setting to ``parser`` (booleans get --x / --no-x)."""
    for name, default, help_text in SETTINGS:
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
        else:
            parser.add_argument(flag, type=type(default), default=default,
                                help=f"{help_text} (default: {default})")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build Settings from parsed command-line options, validating them."""
    values = {name: getattr(args, name) for name, _, _ in SETTINGS}
    values["data_dir"] = Path(values["data_dir"])
    settings = Settings(**values)
    validate_settings(settings)
    return settings


def validate_settings(settings: Settings) -> None:
    """Raise ValueError on settings that cannot work."""
    settings.tz  # noqa: B018 - raises on an unknown zone
    settings.close_at  # noqa: B018 - raises on a malformed time
    if not 0 < settings.max_reading_kwh <= MAX_CEILING_KWH:
        raise ValueError(f"max_reading_kwh must be above 0 and at most {MAX_CEILING_KWH}")
    if settings.late_days < 0 or settings.snapshot_hours <= 0:
        raise ValueError("late_days must be >= 0 and snapshot_hours > 0")
