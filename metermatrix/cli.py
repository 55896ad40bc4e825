"""The ``metermatrix`` operator command: import, export, close-day, backup, verify, admin,
meter-key, headend-key, activation-code, sessions, migrate."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import date
from pathlib import Path

from metermatrix.accounts import hash_password
from metermatrix.activation import activation_code, load_activation_key, write_codes_csv
from metermatrix.backup import backup_database, verify_closed_days
from metermatrix.batches import headend_key
from metermatrix.masterdb import MasterFileError, export_master, import_master
from metermatrix.sessions import resident_user, revoke_sessions
from metermatrix.settings import ENV_DATABASE
from metermatrix.signing import load_fleet_key, meter_key
from metermatrix.storage import Storage, is_postgres_url, open_storage

DB_NAME = "metermatrix.sqlite3"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metermatrix", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--data-dir", type=Path, default=Path("./data"),
                         help="the server's data folder (default: ./data)")
        _database_option(sub)
        return sub

    sub = command("import", "load a master database JSON file (seed 1.4, with region)")
    sub.add_argument("file", type=Path)
    sub.add_argument("--shift-days", type=int, default=0, help="move every date by N days")
    sub = command("export", "write the master database as the seed's JSON (1.4) with region")
    sub.add_argument("--out", type=Path, help="file to write (default: standard output)")
    sub = command("close-day", "close a day now from its stored readings (idempotent)")
    sub.add_argument("--date", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
    sub = command("admin", "management accounts")
    admin = sub.add_subparsers(dest="action", required=True)
    add = admin.add_parser("add", help="create a management login or change its password")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of asking")
    add.add_argument("--data-dir", type=Path, default=Path("./data"), help=argparse.SUPPRESS)
    _database_option(add, hidden=True)
    sub = command("backup", "a consistent copy of the database, safe while the server runs")
    sub.add_argument("--out", type=Path, required=True, help="file to write")
    command("verify", "check that every closed day's totals are the sums of its readings")
    sub = command("meter-key", "print a meter's hex signing key (for provisioning the meter)")
    sub.add_argument("meter_id", type=int)
    sub = command("headend-key", "print a head-end system's hex key for POST /meter/batch")
    sub.add_argument("name")
    sub = command("activation-code", "print a meter's activation code (printed on its bill)")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("meter_id", type=int, nargs="?")
    which.add_argument("--all", action="store_true", help="every meter, as CSV")
    sub.add_argument("--out", type=Path, help="CSV file to write with --all (default: stdout)")
    sub = command("sessions", "login sessions")
    sessions = sub.add_subparsers(dest="action", required=True)
    revoke = sessions.add_parser("revoke", help="end every session of one user now")
    revoke.add_argument("--user", required=True, type=session_user,
                        help="a resident's meter ID, or manager:USERNAME")
    revoke.add_argument("--data-dir", type=Path, default=Path("./data"), help=argparse.SUPPRESS)
    _database_option(revoke, hidden=True)
    sub = commands.add_parser("migrate", help="copy a data folder's SQLite database into "
                              "PostgreSQL (resumable; counts checked at the end)")
    sub.add_argument("--from", dest="source", type=Path, required=True, metavar="DATA_DIR",
                     help="the data folder holding metermatrix.sqlite3")
    sub.add_argument("--to", dest="target", required=True, metavar="postgresql://...",
                     help="the PostgreSQL database to copy into")
    return parser


def _database_option(parser: argparse.ArgumentParser, hidden: bool = False) -> None:
    parser.add_argument(
        "--database", default=os.environ.get(ENV_DATABASE, ""),
        help=argparse.SUPPRESS if hidden else
        "the server's PostgreSQL database, postgresql://USER@HOST:PORT/DB (default: "
        f"${ENV_DATABASE}, else SQLite in --data-dir)")


def session_user(text: str) -> str:
    """A session user from the command line: a meter ID, resident:ID or manager:NAME."""
    if text.startswith("manager:") and len(text) > len("manager:"):
        return text
    digits = text.removeprefix("resident:").replace("-", "").replace(" ", "")
    if digits.isascii() and digits.isdigit() and 0 < int(digits) <= 999_999_999:
        return resident_user(int(digits))
    raise argparse.ArgumentTypeError(f"{text!r} is neither a meter ID nor manager:USERNAME")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("passwords differ")
    if len(password) < 8:
        raise SystemExit("a password needs at least 8 characters")
    return password


def main(argv: list[str] | None = None) -> int:
    """Run one operator command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except OSError as error:  # a missing file or folder: say so, without a traceback
        print(f"metermatrix {args.command}: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "migrate":
        return _migrate(args.source, args.target)
    data_dir: Path = args.data_dir
    database: str = args.database
    needs_db = ("export", "close-day", "activation-code", "sessions", "backup", "verify")
    if args.command in needs_db and not database and not (data_dir / DB_NAME).exists():
        raise FileNotFoundError(f"no master database in {data_dir} (wrong --data-dir?)")
    if args.command == "headend-key":
        print(headend_key(load_fleet_key(data_dir, create=False), args.name).hex())
        return 0
    if args.command == "meter-key":
        key = meter_key(load_fleet_key(data_dir, create=False), args.meter_id)
        print(key.hex())
        return 0
    if args.command == "backup":
        if database:
            raise SystemExit("metermatrix backup copies the SQLite file; back up PostgreSQL"
                             " with pg_dump or pg_basebackup")
        size = backup_database(data_dir / DB_NAME, args.out)
        print(f"backed up {data_dir / DB_NAME} to {args.out} ({size} bytes)")
        return 0
    if args.command == "verify":
        return _verify(data_dir, database)
    storage = open_storage(data_dir, database=database)
    try:
        if args.command == "import":
            try:
                count = import_master(storage, args.file, shift_days=args.shift_days)
            except (MasterFileError, ValueError, KeyError) as error:
                print(f"import failed, nothing stored: {error}", file=sys.stderr)
                return 1
            print(f"imported {count} meters from {args.file}")
        elif args.command == "export":
            data = export_master(storage)
            if args.out:
                args.out.write_bytes(data + b"\n")
            else:
                sys.stdout.buffer.write(data + b"\n")
        elif args.command == "close-day":
            meters = storage.close_day_from_readings(args.date)
            print(f"closed {args.date}: {meters} meters")
        elif args.command == "admin":
            password = _read_password(args.password_stdin)
            with storage.transaction():
                storage.set_manager(args.username, hash_password(password))
            print(f"management login {args.username!r} saved")
        elif args.command == "activation-code":
            _print_codes(storage, args)
        elif args.command == "sessions":
            ended = revoke_sessions(storage, args.user)
            print(f"revoked {ended} sessions of {args.user}")
    finally:
        storage.close()
    return 0


def _print_codes(storage: Storage, args: argparse.Namespace) -> None:
    key = load_activation_key(args.data_dir)
    if not args.all:
        if not 0 < args.meter_id <= 999_999_999:
            raise SystemExit("a meter ID has at most 9 digits and is above 0")
        print(activation_code(key, args.meter_id))
        return
    meters = storage.list_meters()
    if args.out is None:
        write_codes_csv(key, meters, sys.stdout)
        return
    with open(args.out, "w", newline="", encoding="utf-8") as out:
        count = write_codes_csv(key, meters, out)
    print(f"wrote {count} activation codes to {args.out}")
def _verify(data_dir: Path, database: str) -> int:
    storage = open_storage(data_dir, readonly=True, database=database)
    try:
        checks = verify_closed_days(storage)
    finally:
        storage.close()
    differences = [line for check in checks for line in check.differences]
    for line in differences:
        print(line)
    checked = sum(check.meters_checked for check in checks)
    unchecked = sum(check.totals_without_readings for check in checks)
    print(f"verified {len(checks)} closed days: {checked} meter-days match their readings, "
          f"{len(differences)} differ, {unchecked} imported totals without readings")
    return 1 if differences else 0


def _migrate(source: Path, target: str) -> int:
    """``metermatrix migrate``: print each step, the counts, and exit 1 if they differ."""
    if not is_postgres_url(target):
        raise SystemExit("--to must be a postgresql:// URL")
    from metermatrix.storage.to_postgres import MigrationError, migrate_to_postgres

    try:
        report = migrate_to_postgres(source, target, progress=print)
    except MigrationError as error:
        print(f"metermatrix migrate: {error}", file=sys.stderr)
        return 1
    if report.steps_skipped:
        print(f"resumed: {report.steps_skipped} steps were done by an earlier run")
    for what, count, _ in report.counts or []:
        print(f"  {what}: {count}")
    print(f"migrated {source} to PostgreSQL: {report.steps_done} steps, counts match")
    return 0


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
