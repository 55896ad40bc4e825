"""The ``metermatrix`` operator command, run as a real subprocess."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from metermatrix.accounts import verify_password
from metermatrix.demo import DEMO_FILE
from metermatrix.masterdb import read_master
from metermatrix.storage import Reading, open_storage
from tests import dbviews
from tests.conftest import ServerProcess, send_time

COMMAND = str(Path(sys.executable).parent / "metermatrix")


def run(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=120)


def query(data_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with dbviews.connect(data_dir / "metermatrix.sqlite3") as db:
        return db.execute(sql, params).fetchall()


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "metermatrix", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "close-day" in done.stdout


def test_import_then_export_gives_the_seed_file_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = run("import", DEMO_FILE, "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    assert "imported 42 meters" in done.stdout
    out = tmp_path / "export.json"
    assert run("export", "--data-dir", data_dir, "--out", out).returncode == 0
    exported = orjson.loads(out.read_bytes())
    assert exported == read_master(DEMO_FILE)
    assert exported["999999999"]["name"] == "Aashima"
    assert exported["555555555"]["region"] in {"Central", "East", "North", "North-East", "West"}
    stdout = run("export", "--data-dir", data_dir)
    assert orjson.loads(stdout.stdout) == exported


def test_import_then_export_on_either_backend_gives_the_seed_file_back(
        tmp_path: Path, backend_database: str | None) -> None:
    database = ["--database", backend_database] if backend_database else []
    done = run("import", DEMO_FILE, "--data-dir", tmp_path / "data", *database)
    assert done.returncode == 0, done.stderr
    exported = run("export", "--data-dir", tmp_path / "data", *database)
    assert exported.returncode == 0, exported.stderr
    assert orjson.loads(exported.stdout) == read_master(DEMO_FILE)
    assert (tmp_path / "data" / "metermatrix.sqlite3").exists() == (backend_database is None)
    again = run("import", DEMO_FILE, "--data-dir", tmp_path / "data", *database)
    assert again.returncode == 0, again.stderr  # importing again changes nothing
    assert orjson.loads(run("export", "--data-dir", tmp_path / "data", *database).stdout) == (
        read_master(DEMO_FILE))


def test_exported_file_imports_into_a_new_data_folder(tmp_path: Path) -> None:
    run("import", DEMO_FILE, "--data-dir", tmp_path / "a")
    run("export", "--data-dir", tmp_path / "a", "--out", tmp_path / "a.json")
    assert run("import", tmp_path / "a.json", "--data-dir", tmp_path / "b").returncode == 0
    run("export", "--data-dir", tmp_path / "b", "--out", tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_import_can_shift_dates(tmp_path: Path) -> None:
    run("import", DEMO_FILE, "--data-dir", tmp_path / "a", "--shift-days", "3")
    exported = orjson.loads(run("export", "--data-dir", tmp_path / "a").stdout)
    last = max(k for k in read_master(DEMO_FILE)["999999999"] if k[0].isdigit())
    shifted = (datetime.fromisoformat(last) + timedelta(days=3)).date().isoformat()
    assert shifted in exported["999999999"]


def test_bad_import_file_stores_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"999999999": {"name": "A", "2025-02-11": -1}}))
    done = run("import", bad, "--data-dir", tmp_path / "data")
    assert done.returncode == 1
    assert "nothing stored" in done.stderr
    assert query(tmp_path / "data", "SELECT COUNT(*) FROM meters") == [(0,)]


def test_missing_import_file_is_a_clean_error(tmp_path: Path) -> None:
    done = run("import", tmp_path / "absent.json", "--data-dir", tmp_path / "data")
    assert done.returncode == 1
    assert "absent.json" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["export"], ["close-day", "--date", "2025-02-08"]])
def test_commands_on_a_folder_without_a_database_refuse_and_create_nothing(
        tmp_path: Path, command: list[str]) -> None:
    done = run(*command, "--data-dir", tmp_path / "typo")
    assert done.returncode == 1
    assert "no master database" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "typo").exists()


def test_close_day_totals_equal_the_sum_of_readings_and_is_idempotent(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    storage = open_storage(data_dir)
    with storage.transaction():
        storage.add_meters([1, 2])
        storage.add_readings([Reading(1, datetime(2025, 2, 8).date(), slot, 111 * slot + 7)
                              for slot in range(48)])
        storage.add_readings([Reading(2, datetime(2025, 2, 8).date(), 0, 3)])
    storage.close()
    for _ in range(2):
        done = run("close-day", "--data-dir", data_dir, "--date", "2025-02-08")
        assert done.returncode == 0, done.stderr
        assert "closed 2025-02-08: 2 meters" in done.stdout
        assert query(data_dir, "SELECT meter_id, energy_wh, readings FROM day_totals"
                     " ORDER BY 1") == [(1, 111 * sum(range(48)) + 48 * 7, 48), (2, 3, 1)]


def test_close_day_is_safe_while_the_server_runs(make_server) -> None:
    server: ServerProcess = make_server(clock_at="14:10")
    yesterday = server.now().date() - timedelta(days=1)
    for meter_id in (111111111, 222222222):
        for slot in range(0, 48, 5):
            status, _ = server.post_packet(meter_id, send_time(yesterday, slot), 0.1 + slot / 1000)
            assert status == 201
    done = run("close-day", "--data-dir", server.data_dir, "--date", yesterday)
    assert done.returncode == 0, done.stderr
    status, _ = server.post_packet(111111111, send_time(yesterday, 1), 2.5)  # late packet
    assert status == 201
    day = yesterday.isoformat()
    assert query(server.data_dir, "SELECT meter_id, energy_wh FROM day_totals WHERE day = ?"
                 " ORDER BY 1", day) == query(
        server.data_dir, "SELECT meter_id, SUM(energy_wh) FROM readings WHERE day = ?"
        " GROUP BY 1 ORDER BY 1", day)
    assert query(server.data_dir, "SELECT energy_wh FROM day_totals WHERE day = ?"
                 " AND meter_id = 111111111", day)[0][0] == sum(
        100 + slot for slot in range(0, 48, 5)) + 2500


def test_admin_add_saves_a_management_login(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = run("admin", "add", "operator", "--data-dir", data_dir, "--password-stdin",
               stdin="correct horse battery\n")
    assert done.returncode == 0, done.stderr
    storage = open_storage(data_dir)
    try:
        stored = storage.manager_password_hash("operator")
        assert verify_password(stored, "correct horse battery")
        assert not verify_password(stored, "wrong password")
    finally:
        storage.close()


def test_admin_add_refuses_a_short_password(tmp_path: Path) -> None:
    done = run("admin", "add", "operator", "--data-dir", tmp_path / "data", "--password-stdin",
               stdin="short\n")
    assert done.returncode != 0
    assert "at least 8 characters" in done.stderr


def test_meter_key_is_the_hmac_of_the_nine_digit_id(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    fleet_key = bytes(range(32))
    (data_dir / "fleet.key").write_text(fleet_key.hex() + "\n")
    done = run("meter-key", "42", "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hmac.new(fleet_key, b"000000042", hashlib.sha256).hexdigest()


def test_meter_key_without_a_fleet_key_is_a_clean_error(tmp_path: Path) -> None:
    done = run("meter-key", "42", "--data-dir", tmp_path / "data")
    assert done.returncode == 1
    assert "no fleet key" in done.stderr
    assert "Traceback" not in done.stderr
