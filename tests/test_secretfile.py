"""A data folder's secrets, made by several processes at once (``--workers``): one secret."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from metermatrix.activation import load_activation_key
from metermatrix.signing import load_fleet_key
from metermatrix.web.app import cookie_secret


def _read_at_once(barrier: object, data_dir: str, which: str, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    folder = Path(data_dir)
    if which == "fleet":
        value = load_fleet_key(folder).hex()
    elif which == "activation":
        value = load_activation_key(folder).hex()
    else:
        value = cookie_secret(folder)
    results.put(value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("which, name", [("fleet", "fleet.key"),
                                         ("activation", "activation.key"),
                                         ("cookie", "cookie.secret")])
def test_processes_making_a_secret_at_once_all_read_the_same_whole_one(
        tmp_path: Path, which: str, name: str) -> None:
    context = multiprocessing.get_context("fork")
    for attempt in range(10):
        data_dir = tmp_path / f"data{attempt}"
        barrier, results = context.Barrier(12), context.Queue()
        processes = [context.Process(target=_read_at_once,
                                     args=(barrier, str(data_dir), which, results))
                     for _ in range(12)]
        for process in processes:
            process.start()
        values = {results.get(timeout=30) for _ in processes}
        for process in processes:
            process.join(timeout=30)
        assert len(values) == 1 and len(values.pop()) == 64, "processes read different secrets"
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
        assert sorted(p.name for p in data_dir.iterdir()) == [name]  # no temporary left
