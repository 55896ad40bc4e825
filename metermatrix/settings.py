"""Server settings: declared once as a table of (name, default, help), built at the edge."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from metermatrix.slots import first_offset_change

#: Every setting the server understands: (name, default, help). The command line,
#: the ``Settings`` dataclass and the README table are all made from this list.
SETTINGS: list[tuple[str, object, str]] = [
    ("port", 8000, "TCP port the web server listens on"),
    ("host", "127.0.0.1", "address the web server binds to"),
    ("data_dir", "./data", "folder for everything the server writes"),
    ("database", "", "master database: a postgresql://USER@HOST:PORT/DB URL (default, or "
                     "empty: SQLite in --data-dir; settings, keys and recovery stay there); "
                     "default from $METERMATRIX_DATABASE"),
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
    ("grid_emission_factor_kg_per_kwh", 0.408,
     "grid emission factor for CO2 estimates [kg CO2/kWh] (EMA average operating margin "
     "2020, Singapore Energy Statistics table T2.4)"),
    ("dashboards", True, "start Voila and serve the notebooks as dashboards"),
    ("voila_kernels", 2, "preheated kernels per dashboard notebook"),
    ("reader_processes", 1, "processes computing residents' pages beside the server "
                            "(0: a thread of the server)"),
    ("workers", 1, "server processes sharing the port, each with its own writer "
                   "(more than 1 needs --database postgresql://...)"),
    ("idle_timeout_s", 30.0, "close a connection that sends no request for this long [s]"),
    ("body_timeout_s", 30.0, "close a connection whose request body takes longer [s]"),
    ("max_connections", 10000, "open connections at most (lowered to fit the file limit)"),
    ("clock_offset_s", 0.0, "for tests only: run the server's clock this far ahead [s]"),
]


#: Environment variable naming the master database when --database is not given.
ENV_DATABASE = "METERMATRIX_DATABASE"

#: Highest plausibility ceiling: today's store keeps a reading in 16 bits of watt-hours.
MAX_CEILING_KWH = 65.534


@dataclass(frozen=True)
class Settings:
    """Everything the server and routines need to know, passed down explicitly."""

    port: int = 8000
    host: str = "127.0.0.1"
    data_dir: Path = Path("./data")
    database: str = ""
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
    grid_emission_factor_kg_per_kwh: float = 0.408
    dashboards: bool = True
    reader_processes: int = 1
    voila_kernels: int = 2
    workers: int = 1
    idle_timeout_s: float = 30.0
    body_timeout_s: float = 30.0
    max_connections: int = 10000
    clock_offset_s: float = 0.0

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
        if name == "database":
            parser.add_argument(flag, default=os.environ.get(ENV_DATABASE, ""), help=help_text)
            continue
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


def validate_settings(settings: Settings, now: datetime | None = None) -> None:
    """Raise ValueError on settings that cannot work."""
    check_timezone(settings.tz, now or datetime.now(UTC))
    settings.close_at  # noqa: B018 - raises on a malformed time
    if settings.database and not settings.database.startswith(("postgresql://", "postgres://")):
        raise ValueError("database must be a postgresql:// URL (or empty for SQLite)")
    if settings.workers < 1 or (settings.workers > 1 and not settings.database):
        raise ValueError("workers must be at least 1; more than 1 share a PostgreSQL "
                         "database (--database postgresql://...)")
    if not 0 < settings.max_reading_kwh <= MAX_CEILING_KWH:
        raise ValueError(f"max_reading_kwh must be above 0 and at most {MAX_CEILING_KWH}")
    if settings.late_days < 0 or settings.snapshot_hours <= 0:
        raise ValueError("late_days must be >= 0 and snapshot_hours > 0")
    if min(settings.idle_timeout_s, settings.body_timeout_s, settings.max_connections) <= 0:
        raise ValueError("idle_timeout_s, body_timeout_s and max_connections must be above 0")


def check_timezone(tz: ZoneInfo, now: datetime, years: int = 10) -> None:
    """Raise ValueError for a zone whose days are not always 48 half hours (daylight saving)."""
    change = first_offset_change(tz, now, years)
    if change is not None:
        before = (change - timedelta(days=1)).astimezone(tz).strftime("%z")
        after = change.astimezone(tz).strftime("%z")
        raise ValueError(
            f"time zone {tz.key} changes its UTC offset around {change.date()} (from {before} "
            f"to {after}), so some of its days are not 48 half hours; MeterMatrix files "
            "readings in days of 48 half hours only: choose a zone without daylight saving "
            "(for example UTC or Asia/Singapore)")
