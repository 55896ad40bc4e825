"""A simulated month through a real server: every acknowledged kWh counted exactly once.

Twenty meters for thirty days, in UTC and in Asia/Singapore, from a seeded random
generator: packets on time and late (single and in head-end batches), resends and
conflicting resends, day totals imported with ``metermatrix import``, days closed by
hand with ``metermatrix close-day``, closes by the server's timer while packets arrive,
clean restarts and ``kill -9`` at random moments. The server's clock is moved from
start to start with ``--clock-offset-s``.

At the end a second sqlite3 connection checks every meter and day: each acknowledged
reading (201 stored or 200 duplicate) is stored once, under its local date and half
hour, with its value; nothing is stored that was never sent; each total is the sum of
the day's stored readings to the watt-hour, or the imported figure for an imported day;
the region totals add up to the meters' totals.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from metermatrix.slots import SLOTS_PER_DAY
from metermatrix.storage import IMPORTED_DAY
from tests import dbviews
from tests.conftest import ROOT, ServerProcess, send_time
from tests.test_batch import post_batch, stamp

METERS = [100_000_001 + 37 * index for index in range(20)]
FIRST_DAY, DAYS = date(2025, 3, 3), 30
CLOSE = "23:45"
#: Packets older than this are not sent any more (the server keeps 7 days).
WINDOW = timedelta(days=6, hours=20)
Key = tuple[int, date, int]  # (meter_id, local day, slot)


class Ledger:
    """What was sent, what was acknowledged and what was imported, by (meter, day, slot)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.lock = threading.Lock()
        self.sent: dict[Key, set[int]] = {}
        self.acknowledged: dict[Key, int] = {}
        #: (meter, day) -> imported total [Wh]; True once the import has run.
        self.imported: dict[tuple[int, date], int] = {}
        self.imports_done = False
        self._moments: dict[Key, datetime] = {}

    def moment(self, key: Key) -> datetime:
        """When the meter sends the packet of ``key`` (hh:01 or hh:31 local)."""
        found = self._moments.get(key)
        if found is None:
            found = self._moments[key] = send_time(key[1], key[2], str(self.tz))
        return found

    def record_sent(self, key: Key, wh: int) -> None:
        with self.lock:
            self.sent.setdefault(key, set()).add(wh)

    def check_answer(self, key: Key, wh: int, status: int, answer: str) -> None:
        """Hold the server to what the ledger knows, then note an acknowledgement.

        ``answer`` is "stored", "duplicate", "conflict", "imported" or "" (no answer).
        """
        with self.lock:
            held = self.acknowledged.get(key)
            if (key[0], key[1]) in self.imported and self.imports_done:
                assert answer == "imported", (key, status, answer)
                return
            if held is not None:
                assert answer == ("duplicate" if held == wh else "conflict"), (key, wh, answer)
            elif self.sent.get(key) == {wh} and answer not in ("", "duplicate"):
                assert answer == "stored", (key, wh, status, answer)
            if answer in ("stored", "duplicate"):
                self.acknowledged[key] = wh


def value_of(rng: random.Random) -> int:
    """A half hour's reading [Wh]: mostly small, now and then large."""
    return rng.choice([rng.randint(0, 400), rng.randint(0, 2500), rng.randint(2500, 9000)])


def post_single(server: ServerProcess, ledger: Ledger, key: Key, wh: int) -> None:
    ledger.record_sent(key, wh)
    try:
        status, body = server.post_packet(key[0], ledger.moment(key), wh / 1000)
    except OSError:  # killed while the packet was on its way: no answer
        return
    answer = str(body.get("status", "")) if status in (200, 201, 409) else ""
    if answer in ("stored", "duplicate"):
        assert (body["date"], body["slot"] != "") == (key[1].isoformat(), True), body
    ledger.check_answer(key, wh, status, answer)


def post_lines(server: ServerProcess, ledger: Ledger, items: list[tuple[Key, int]]) -> None:
    """Send packets as one head-end batch; a line with no error is acknowledged."""
    for key, wh in items:
        ledger.record_sent(key, wh)
    body = b"\n".join(orjson.dumps({"id": key[0], "timestamp": stamp(ledger.moment(key)),
                                    "reading_kWh": wh / 1000}) for key, wh in items)
    try:
        status, answer = post_batch(server, body)
    except OSError:
        return
    if status != 200:
        return
    errors = {int(e["line"]): str(e["error"]) for e in answer["errors"]}  # type: ignore[union-attr]
    for number, (key, wh) in enumerate(items, start=1):
        error = errors.get(number)
        outcome = ("ok" if error is None else "imported" if error == IMPORTED_DAY
                   else "conflict" if "already sent a different reading" in error else error)
        assert outcome in ("ok", "imported", "conflict"), (key, error)
        if outcome == "ok":
            held = ledger.acknowledged.get(key)
            outcome = "duplicate" if held is not None or ledger.sent[key] != {wh} else "stored"
        ledger.check_answer(key, wh, status, outcome)


def send_mixed(server: ServerProcess, ledger: Ledger, rng: random.Random,
               items: list[tuple[Key, int]]) -> None:
    """Send packets in random order, some singly (concurrently), most in batches."""
    rng.shuffle(items)
    single = [item for item in items if rng.random() < 0.15]
    chosen = {id(item) for item in single}
    batched = [item for item in items if id(item) not in chosen]
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [pool.submit(post_single, server, ledger, key, wh) for key, wh in single]
        for start in range(0, len(batched), 400):
            post_lines(server, ledger, batched[start:start + 400])
        for job in jobs:
            job.result()


class Month:
    """The month's plan and its progress: which packets are due, late, imported."""

    def __init__(self, tz: ZoneInfo, rng: random.Random) -> None:
        self.tz, self.rng = tz, rng
        self.values = {(m, FIRST_DAY + timedelta(days=d), s): value_of(rng)
                       for m in METERS for d in range(DAYS) for s in range(SLOTS_PER_DAY)}
        self.ledger = Ledger(tz)
        days = [FIRST_DAY + timedelta(days=d) for d in range(2, DAYS - 3)]
        for _ in range(6):
            self.ledger.imported[rng.choice(METERS), rng.choice(days)] = rng.randint(1, 40_000)
        #: meter-days that go quiet and send everything a start later (late packets)
        self.late = {(m, FIRST_DAY + timedelta(days=d)) for m in METERS for d in range(DAYS)
                     if rng.random() < 0.08}

    def due(self, now: datetime) -> list[tuple[Key, int]]:
        """Packets due by ``now`` that are neither acknowledged nor out of the window."""
        items = []
        imported = self.ledger.imported
        for key, wh in self.values.items():
            moment = self.ledger.moment(key)
            if moment > now + timedelta(minutes=4) or moment < now - WINDOW:
                continue
            if key in self.ledger.acknowledged:
                continue
            if (key[0], key[1]) in imported and not self.ledger.imports_done:
                continue
            if (key[0], key[1]) in self.late and moment > now - timedelta(hours=20):
                continue
            items.append((key, wh))
        return items

    def resends(self, now: datetime, count: int) -> list[tuple[Key, int]]:
        """Acknowledged packets sent again, most with their value, some with another."""
        keys = [key for key in self.ledger.acknowledged
                if self.ledger.moment(key) >= now - WINDOW]
        chosen = self.rng.sample(keys, min(count, len(keys)))
        return [(key, self.values[key] if self.rng.random() < 0.7 else self.values[key] + 1)
                for key in chosen]


def set_clock(server: ServerProcess, moment: datetime) -> None:
    """The server's clock reads ``moment`` from now on (at its next start)."""
    server.clock_offset_s = (moment - datetime.now(UTC)).total_seconds()


def operator(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "metermatrix", *args, "--data-dir",
                           str(data_dir)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    return done


def import_totals(server: ServerProcess, month: Month, tmp_path: Path) -> None:
    """``metermatrix import`` of the planned meter-days' totals, while the server runs."""
    data: dict[str, dict[str, object]] = {}
    for (meter_id, day), wh in month.ledger.imported.items():
        data.setdefault(f"{meter_id:09d}", {})[day.isoformat()] = wh / 1000
    path = tmp_path / "imported.json"
    path.write_bytes(orjson.dumps(data))
    done = operator(server.data_dir, "import", str(path))
    assert done.returncode == 0, done.stderr
    month.ledger.imports_done = True


def start_moments(tz: ZoneInfo, rng: random.Random) -> Iterator[datetime]:
    """When each start of the server happens (its clock), through the month."""
    moment = datetime.combine(FIRST_DAY, datetime.min.time(), tz) + timedelta(hours=2)
    last = datetime.combine(FIRST_DAY + timedelta(days=DAYS), datetime.min.time(), tz)
    while moment < last:
        yield moment
        step = timedelta(hours=rng.uniform(14, 80))
        close = datetime.combine((moment + step).date(), datetime.min.time(), tz) + timedelta(
            hours=23, minutes=45)
        moment = close - timedelta(seconds=3) if rng.random() < 0.3 else moment + step
    yield last + timedelta(minutes=40)  # the last day's 00:01 packets, the last close


def run_epoch(server: ServerProcess, month: Month, moment: datetime, tmp_path: Path,
              crash: bool) -> None:
    """One start of the server: packets due, resends, operator commands, stop or kill."""
    rng, ledger = month.rng, month.ledger
    set_clock(server, moment)
    server.start()
    work = month.due(server.now()) + month.resends(server.now(), 40)
    if crash:
        delay_s = rng.uniform(0.05, 0.8)
        rng.shuffle(work)
        sender = threading.Thread(target=send_mixed,
                                  args=(server, ledger, random.Random(delay_s), work))
        sender.start()
        time.sleep(delay_s)
        server.kill()
        sender.join()
        return
    send_mixed(server, ledger, rng, work)
    if not ledger.imports_done and all(
            day < server.now().astimezone(month.tz).date() for _, day in ledger.imported):
        import_totals(server, month, tmp_path)
        send_mixed(server, ledger, rng, month.due(server.now()))  # 409 imported
    if rng.random() < 0.3:
        local = server.now().astimezone(month.tz).date()
        day = rng.choice([local, local - timedelta(days=1), local - timedelta(days=2)])
        assert operator(server.data_dir, "close-day", "--date", day.isoformat()).returncode == 0
        send_mixed(server, ledger, rng, month.resends(server.now(), 20))
    assert server.stop() == 0


def check_month(data_dir: Path, ledger: Ledger) -> None:
    """Every meter-day against the ledger, through a second connection."""
    with dbviews.connect(data_dir / "metermatrix.sqlite3") as db:
        stored = {(m, date.fromisoformat(d), s): wh for m, d, s, wh in
                  db.execute("SELECT meter_id, day, slot, energy_wh FROM readings")}
        totals = {(m, date.fromisoformat(d)): (wh, n) for m, d, wh, n in
                  db.execute("SELECT meter_id, day, energy_wh, readings FROM day_totals")}
        regions = {date.fromisoformat(d): (wh, n) for d, wh, n in db.execute(
            "SELECT day, SUM(energy_wh), SUM(readings) FROM region_daily GROUP BY day")}
        closed = {date.fromisoformat(d) for (d,) in db.execute("SELECT day FROM closed_days")}
    for key, wh in ledger.acknowledged.items():
        assert stored.get(key) == wh, key  # kept, once, under its local day and half hour
    for key, wh in stored.items():
        assert wh in ledger.sent.get(key, set()), key  # nothing that was never sent
    sums: dict[tuple[int, date], tuple[int, int]] = {}
    for (meter_id, day, _), wh in stored.items():
        energy, count = sums.get((meter_id, day), (0, 0))
        sums[meter_id, day] = (energy + wh, count + 1)
    expected = dict(sums)
    for meter_day, wh in ledger.imported.items():
        assert meter_day not in sums, meter_day  # no reading added to an imported day
        expected[meter_day] = (wh, SLOTS_PER_DAY)
    assert totals == expected
    assert closed >= {FIRST_DAY + timedelta(days=d) for d in range(DAYS)}
    by_day: dict[date, tuple[int, int]] = {}
    for (_, day), (wh, n) in totals.items():
        energy, count = by_day.get(day, (0, 0))
        by_day[day] = (energy + wh, count + n)
    assert regions == by_day


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Singapore"])
def test_a_month_of_faults_counts_every_acknowledged_reading_once(
        make_server, tmp_path: Path, timezone: str) -> None:
    tz = ZoneInfo(timezone)
    rng = random.Random(f"month-{timezone}")
    month = Month(tz, rng)
    server: ServerProcess = make_server(timezone=timezone, extra=["--close-time", CLOSE])
    server.stop()
    moments = list(start_moments(tz, rng))
    for index, moment in enumerate(moments):
        crash = index < len(moments) - 1 and rng.random() < 0.35
        run_epoch(server, month, moment, tmp_path, crash)
    set_clock(server, moments[-1] + timedelta(minutes=5))
    server.start()  # days that only had late packets are closed on this start
    assert server.stop() == 0
    assert len(month.ledger.acknowledged) > 0.9 * len(month.values)
    assert month.ledger.imports_done
    check_month(server.data_dir, month.ledger)
    done = operator(server.data_dir, "verify")
    assert done.returncode == 0, done.stdout
