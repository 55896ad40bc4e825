"""A clean shutdown when the recovery snapshot cannot be written."""

from __future__ import annotations

import time

from tests.conftest import ServerProcess, send_time


def test_unwritable_snapshot_leaves_no_temporary_and_exits_0(make_server) -> None:
    server: ServerProcess = make_server()
    day = server.now().date()
    assert server.post_packet(5, send_time(day, 0), 0.3)[0] == 201
    blocker = server.data_dir / "recovery" / f"recovery-{day.isoformat()}.json"
    blocker.mkdir(parents=True)  # the snapshot can be written but never renamed into place
    (blocker / "keep").write_text("x")
    assert server.stop() == 0
    log = server.log_path.read_text()
    assert "Traceback" not in log
    assert "every acknowledged reading is in the database" in log
    assert list(blocker.parent.glob(".recovery-*.tmp")) == []


def test_failed_periodic_snapshots_leave_no_temporary_files(make_server) -> None:
    server: ServerProcess = make_server(extra=["--snapshot-hours", "0.0003"])  # about 1 s
    day = server.now().date()
    blocker = server.data_dir / "recovery" / f"recovery-{day.isoformat()}.json"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("x")
    assert server.post_packet(6, send_time(day, 0), 0.3)[0] == 201
    deadline = time.monotonic() + 30
    while server.log_path.read_text().count("recovery snapshot to") < 2:
        assert time.monotonic() < deadline, "no snapshot was tried"
        time.sleep(0.2)
    assert list(blocker.parent.glob(".recovery-*.tmp")) == []
