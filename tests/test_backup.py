"""metermatrix backup (while the server writes) and metermatrix verify."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import date, timedelta

from metermatrix.storage import Reading, open_storage
from tests.conftest import ServerProcess, send_time
from tests.test_cli import run

DAY = date(2025, 2, 8)


def test_backup_while_packets_are_stored_is_a_consistent_database(make_server, tmp_path) -> None:
    server: ServerProcess = make_server()
    day = server.now().date() - timedelta(days=1)
    stop = threading.Event()
    acknowledged: list[int] = []

    def post() -> None:
        for meter_id in range(1, 10_000):
            if stop.is_set():
                return
            if server.post_packet(meter_id, send_time(day, 3), 0.2)[0] == 201:
                acknowledged.append(meter_id)

    writer = threading.Thread(target=post)
    writer.start()
    while len(acknowledged) < 50:
        time.sleep(0.01)
    out = tmp_path / "copy.sqlite3"
    done = run("backup", "--data-dir", server.data_dir, "--out", out)
    seen_before_copy_ended = len(acknowledged)
    stop.set()
    writer.join()
    assert done.returncode == 0, done.stderr
    copy = sqlite3.connect(out)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()
    (tmp_path / "restored").mkdir()
    (tmp_path / "restored" / "metermatrix.sqlite3").write_bytes(out.read_bytes())
    restored = open_storage(tmp_path / "restored", readonly=True)
    copied = {r.meter_id for r in restored.readings_between(acknowledged, day, day)}
    restored.close()
    assert 50 <= len(copied) <= len(acknowledged)
    assert set(acknowledged[:50]) <= copied  # acknowledged before the copy: in the copy
    assert seen_before_copy_ended >= 50


def test_verify_reports_a_total_that_is_not_the_sum_of_its_readings(tmp_path) -> None:
    data_dir = tmp_path / "data"
    storage = open_storage(data_dir)
    with storage.transaction():
        storage.add_meters([1, 2])
        storage.add_readings([Reading(1, DAY, slot, 100) for slot in range(48)]
                             + [Reading(2, DAY, 0, 7)])
    storage.close_day_from_readings(DAY)
    storage.close()
    done = run("verify", "--data-dir", data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 meter-days match their readings, 0 differ" in done.stdout
    with sqlite3.connect(data_dir / "metermatrix.sqlite3") as db:  # a total gone wrong
        db.execute("UPDATE daily_totals SET energy_wh = 4700 WHERE meter_id = 1")
    done = run("verify", "--data-dir", data_dir)
    assert done.returncode == 1
    assert "meter 000000001: total 4700 Wh over 48 readings, readings sum to 4800 Wh" in done.stdout
