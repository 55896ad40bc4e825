"""A fleet of simulated meters posting signed half-hourly packets (seed 1.1) to a server.

Two modes: *replay* sends every slot of some past days as fast as the server takes them;
*live* sends each slot's packets at hh:01 / hh:31 local, optionally after a *backfill* of
today's slots already due. Every packet the server acknowledges (2xx) is appended to a
JSON-lines ledger once the acknowledgement has arrived.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from numpy.typing import NDArray
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tqdm import tqdm

from metermatrix.clock import Clock, offset_clock, utc_now
from metermatrix.loadshape import fleet_day_energy_wh
from metermatrix.signing import SIGNATURE_HEADER, load_fleet_key, meter_key, sign_body
from metermatrix.slots import SLOT_LABELS, SLOTS_PER_DAY, interval_start, slots_elapsed

#: A packet leaves this long after its interval starts (the interval plus one minute).
SEND_AFTER_START = timedelta(minutes=31)
#: Live packets leave up to this many seconds after hh:01 / hh:31.
JITTER_S = 20.0
#: Attempts per packet when the server answers 503 or cannot be reached.
MAX_ATTEMPTS = 10
MAX_BACKOFF_S = 30.0
#: How long to wait for a server that is still starting.
CONNECT_PATIENCE_S = 60.0
LEDGER_FLUSH_S = 1.0


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate, against which server, and where to record it."""

    server: str
    data_dir: Path
    meter_ids: Sequence[int]
    seed: int
    ledger_path: Path
    concurrency: int = 16
    start_day: date | None = None
    days: int = 1
    backfill: bool = False
    #: Replay through POST /meter/batch as a head-end system, this many lines a batch.
    bulk: bool = False
    batch_size: int = 100_000
    #: For tests only: run the simulator's clock this far ahead [s], as the server's
    #: ``--clock-offset-s`` does, so that both agree on the hour whatever the real one.
    clock_offset_s: float = 0.0


@dataclass(frozen=True)
class ServerStatus:
    """What the server says about itself at GET /api/v1/status."""

    tz: ZoneInfo
    open_day: date | None = None
    late_days: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One packet to send: a meter's reading of one slot, and when it is sent."""

    meter_id: int
    day: date
    slot: int
    sent_at: datetime
    energy_wh: int


@dataclass
class Tally:
    """Packet counts by outcome, and the first few refusals' messages."""

    sent: int = 0
    stored: int = 0
    duplicate: int = 0
    refused: int = 0
    undelivered: int = 0
    messages: dict[str, int] = field(default_factory=dict)

    def refuse(self, code: int, message: str) -> None:
        """Count a refusal and remember its message."""
        self.refused += 1
        self._remember(f"refused {code}: {message}")

    def give_up(self, code: int, message: str) -> None:
        """Count a packet that could not be delivered (server busy or unreachable)."""
        self.undelivered += 1
        self._remember(f"undelivered {code}: {message}")

    def _remember(self, message: str) -> None:
        self.messages[message] = self.messages.get(message, 0) + 1

    def summary(self) -> str:
        """One line per fact: counts, then the distinct refusals."""
        lines = [f"simulator: sent {self.sent}, stored {self.stored}, duplicate "
                 f"{self.duplicate}, refused {self.refused}, undelivered {self.undelivered}"]
        for message, count in sorted(self.messages.items(), key=lambda item: -item[1])[:10]:
            lines.append(f"  {count} x {message}")
        return "\n".join(lines)


def send_time(day: date, slot: int, tz: ZoneInfo) -> datetime:
    """When the packet of ``slot`` on local ``day`` is sent (hh:01 / hh:31 local)."""
    return interval_start(day, slot, tz) + SEND_AFTER_START


def format_timestamp(moment: datetime) -> str:
    """``moment`` as the seed's UTC timestamp, e.g. 2025-02-08T00:31:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def packet_body(meter_id: int, sent_at: datetime, energy_wh: int) -> bytes:
    """The seed 1.1 packet: id, UTC timestamp and the reading in kWh with 3 decimals."""
    return (f'{{"id": {meter_id}, "timestamp": "{format_timestamp(sent_at)}", '
            f'"reading_kWh": {energy_wh / 1000:.3f}}}').encode("ascii")


class Ledger:
    """JSON lines of acknowledged packets, appended, buffered and flushed every second."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        self._flushed_at = time.monotonic()

    def record(self, delivery: Delivery, status: str, answer: dict[str, object]) -> None:
        """Append an acknowledged packet; day and slot as the server filed it."""
        line = {
            "id": delivery.meter_id,
            "timestamp": format_timestamp(delivery.sent_at),
            "reading_kWh": delivery.energy_wh / 1000,
            "energy_wh": delivery.energy_wh,
            "status": status,
            "day": answer.get("date", delivery.day.isoformat()),
            "slot": answer.get("slot", SLOT_LABELS[delivery.slot]),
        }
        self._file.write(orjson.dumps(line) + b"\n")
        if time.monotonic() - self._flushed_at >= LEDGER_FLUSH_S:
            self.flush()

    def write(self, lines: bytes) -> None:
        """Append ready-made ledger lines (one JSON object each, newline-terminated)."""
        self._file.write(lines)
        if time.monotonic() - self._flushed_at >= LEDGER_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the file."""
        self._file.flush()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        """Flush and close."""
        self._file.close()


class MeterClient:
    """Signs and posts packets, retrying 503s and unreachable servers with backoff."""

    def __init__(self, server: str, concurrency: int, stop: asyncio.Event) -> None:
        self.server = server.rstrip("/")
        self.stop = stop
        self.keys: dict[int, bytes] = {}
        self._http = AsyncHTTPClient(force_instance=True, max_clients=concurrency)

    def close(self) -> None:
        """Release the HTTP client."""
        self._http.close()

    async def fetch(self, path: str, body: bytes | None = None,
                    headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
        """One request; (status, JSON answer). Status 599: the server was not reached."""
        request = HTTPRequest(self.server + path, method="GET" if body is None else "POST",
                              body=body, headers=headers, connect_timeout=10,
                              request_timeout=60)
        response = await self._http.fetch(request, raise_error=False)
        try:
            answer = orjson.loads(response.body or b"{}")
        except orjson.JSONDecodeError:
            answer = {"error": (response.body or b"").decode(errors="replace")[:200]}
        if not isinstance(answer, dict):
            answer = {"error": f"unexpected answer {answer!r}"[:200]}
        if response.code == 503 and response.headers.get("Retry-After", "").isdigit():
            answer["retry_after_s"] = int(response.headers["Retry-After"])
        if response.code == 599:
            answer = {"error": str(response.error)}
        return response.code, answer

    async def server_status(self) -> ServerStatus:
        """The server's time zone, open day and late window; UTC if it does not say."""
        deadline = time.monotonic() + CONNECT_PATIENCE_S
        code, answer = await self.fetch("/api/v1/status")
        while code == 599 and time.monotonic() < deadline and not self.stop.is_set():
            await asyncio.sleep(0.5)
            code, answer = await self.fetch("/api/v1/status")
        if code == 404:
            return ServerStatus(ZoneInfo("UTC"))
        if code != 200:
            raise ConnectionError(f"{self.server}/api/v1/status answered {code}: {answer}")
        open_day, late_days = answer.get("open_day"), answer.get("late_days")
        return ServerStatus(
            ZoneInfo(str(answer.get("timezone") or "UTC")),
            date.fromisoformat(open_day) if isinstance(open_day, str) else None,
            late_days if isinstance(late_days, int) else None,
        )

    async def deliver(self, delivery: Delivery) -> tuple[int, dict[str, object]]:
        """Post ``delivery`` until the server answers something other than 503."""
        body = packet_body(delivery.meter_id, delivery.sent_at, delivery.energy_wh)
        headers = {SIGNATURE_HEADER: sign_body(self.keys[delivery.meter_id], body),
                   "Content-Type": "application/json"}
        code, answer = 599, dict[str, object]()
        for attempt in range(MAX_ATTEMPTS):
            code, answer = await self.fetch("/meter", body, headers)
            if code not in (503, 599) or self.stop.is_set():
                break
            backoff_s = min(0.5 * 2**attempt, MAX_BACKOFF_S) * random.uniform(0.5, 1.5)
            retry_after_s = answer.get("retry_after_s")
            if isinstance(retry_after_s, int):
                backoff_s = max(backoff_s, min(retry_after_s, MAX_BACKOFF_S))
            await _sleep_unless(self.stop, backoff_s)
        return code, answer


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        pass


def record_answer(delivery: Delivery, code: int, answer: dict[str, object], tally: Tally,
                  ledger: Ledger) -> None:
    """Count the server's final answer to ``delivery``; ledger it when acknowledged."""
    tally.sent += 1
    if 200 <= code < 300:
        status = str(answer.get("status", "stored"))
        if status == "duplicate":
            tally.duplicate += 1
        else:
            tally.stored += 1
        ledger.record(delivery, status, answer)
    elif code in (503, 599):
        tally.give_up(code, str(answer.get("error", "")))
    else:
        tally.refuse(code, str(answer.get("error") or answer.get("status") or answer))


async def pump(deliveries: AsyncGenerator[Delivery, None], client: MeterClient, tally: Tally,
               ledger: Ledger, concurrency: int, progress: tqdm[None] | None = None) -> None:
    """Deliver everything ``deliveries`` yields with ``concurrency`` requests in flight."""
    queue: asyncio.Queue[Delivery | None] = asyncio.Queue(maxsize=4 * concurrency)

    async def worker() -> None:
        while (delivery := await queue.get()) is not None:
            try:
                code, answer = await client.deliver(delivery)
            except Exception as error:  # one odd request must not stall the other workers
                code, answer = 599, {"error": repr(error)}
            record_answer(delivery, code, answer, tally, ledger)
            if progress is not None:
                progress.update()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        async with aclosing(deliveries):
            async for delivery in deliveries:
                if client.stop.is_set():
                    break
                await queue.put(delivery)
    finally:
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)


class EnergyCache:
    """Each meter's 48 readings of a day [Wh], computed once per day for the whole fleet."""

    def __init__(self, meter_ids: Sequence[int], seed: int) -> None:
        self.meter_ids = np.asarray(meter_ids, dtype=np.int64)
        self.seed = seed
        self._days: dict[date, NDArray[np.int64]] = {}

    def of_day(self, day: date) -> NDArray[np.int64]:
        """Readings of ``day``, shape (meters, 48)."""
        if day not in self._days:
            if len(self._days) >= 3:
                self._days.pop(min(self._days))
            self._days[day] = fleet_day_energy_wh(self.meter_ids, day, self.seed)
        return self._days[day]


def due_slots(days: Sequence[date], not_after: datetime, tz: ZoneInfo) -> list[tuple[date, int]]:
    """The (day, slot)s of ``days`` whose send time is not after ``not_after``, in order."""
    return [(day, slot) for day in days for slot in range(SLOTS_PER_DAY)
            if send_time(day, slot, tz) <= not_after]


def backfill_slots(now: datetime, tz: ZoneInfo) -> list[tuple[date, int]]:
    """The slots sent so far today: yesterday's 00:01 packet, then today's elapsed slots."""
    today = now.astimezone(tz).date()
    last_of_yesterday = (today - timedelta(days=1), SLOTS_PER_DAY - 1)
    slots = [last_of_yesterday] if send_time(*last_of_yesterday, tz) <= now else []
    return slots + [(today, slot) for slot in range(slots_elapsed(today, now, tz))]


async def slot_deliveries(slots: Sequence[tuple[date, int]], tz: ZoneInfo,
                          energy: EnergyCache) -> AsyncGenerator[Delivery, None]:
    """Every meter's packet for each of ``slots``, stamped with its nominal send time."""
    for day, slot in slots:
        sent_at = send_time(day, slot, tz)
        readings_wh = energy.of_day(day)[:, slot].tolist()
        for meter_id, energy_wh in zip(energy.meter_ids.tolist(), readings_wh, strict=True):
            yield Delivery(meter_id, day, slot, sent_at, energy_wh)
        await asyncio.sleep(0)


def next_send(after: datetime, tz: ZoneInfo) -> tuple[date, int, datetime]:
    """The first (day, slot, send time) whose send time is strictly after ``after``."""
    today = after.astimezone(tz).date()
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        for slot in range(SLOTS_PER_DAY):
            if (moment := send_time(day, slot, tz)) > after:
                return day, slot, moment
    raise AssertionError("a send time follows every instant")


async def live_deliveries(after: datetime, tz: ZoneInfo, energy: EnergyCache,
                          stop: asyncio.Event, clock: Clock = utc_now
                          ) -> AsyncGenerator[Delivery, None]:
    """Each slot's packets at hh:01 / hh:31 local plus 0-20 s jitter by ``clock``, until
    ``stop``."""
    while not stop.is_set():
        day, slot, boundary = next_send(after, tz)
        rng = np.random.default_rng([energy.seed, int(boundary.timestamp())])
        jitter_s = np.sort(rng.uniform(0.0, JITTER_S, len(energy.meter_ids)))
        order = rng.permutation(len(energy.meter_ids))
        readings_wh = energy.of_day(day)[:, slot]
        for index, offset_s in zip(order.tolist(), jitter_s.tolist(), strict=True):
            sent_at = boundary + timedelta(seconds=int(offset_s))
            wait_s = (sent_at - clock()).total_seconds()
            if wait_s > 0:
                await _sleep_unless(stop, wait_s)
            if stop.is_set():
                return
            meter_id = int(energy.meter_ids[index])
            yield Delivery(meter_id, day, slot, sent_at, int(readings_wh[index]))
        after = boundary


async def simulate(config: SimulatorConfig) -> int:
    """Run the simulator until done (replay) or stopped (live); the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client = MeterClient(config.server, config.concurrency, stop)
    tally = Tally()
    try:
        status = await client.server_status()
        fleet_key = load_fleet_key(config.data_dir, create=False)
        client.keys = {meter_id: meter_key(fleet_key, meter_id) for meter_id in config.meter_ids}
        with closing(Ledger(config.ledger_path)) as ledger:
            flusher = asyncio.create_task(_flush_every_second(ledger))
            try:
                await _run(config, status, client, tally, ledger, stop)
            finally:
                flusher.cancel()
    except (ConnectionError, FileNotFoundError) as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(tally.summary(), file=sys.stderr)
    if config.start_day is None:
        return 0
    return 0 if tally.refused == tally.undelivered == 0 and not stop.is_set() else 1


async def _flush_every_second(ledger: Ledger) -> None:
    """Keep the ledger at most a second behind, also while no packet is acknowledged."""
    while True:
        await asyncio.sleep(LEDGER_FLUSH_S)
        ledger.flush()


async def _run(config: SimulatorConfig, status: ServerStatus, client: MeterClient,
               tally: Tally, ledger: Ledger, stop: asyncio.Event) -> None:
    """Replay the configured days, or backfill and go live."""
    energy = EnergyCache(config.meter_ids, config.seed)
    clock = offset_clock(config.clock_offset_s)
    now = clock()
    print(f"simulator: {len(config.meter_ids)} meters -> {client.server} "
          f"(time zone {status.tz.key}, open day {status.open_day})", file=sys.stderr)
    if config.start_day is not None:
        days = [config.start_day + timedelta(days=offset) for offset in range(config.days)]
        slots = due_slots(days, now, status.tz)
        _warn_if_too_old(slots, status, now)
        with tqdm(total=len(slots) * len(config.meter_ids), unit="packet",
                  file=sys.stderr, disable=None) as progress:
            if config.bulk:
                from metermatrix.batches import headend_key
                from metermatrix.headend import HEADEND_NAME, replay_bulk
                key = headend_key(load_fleet_key(config.data_dir, create=False), HEADEND_NAME)
                await replay_bulk(days, slots, status, energy, client, key, tally, ledger,
                                  config.batch_size, progress)
            else:
                await pump(slot_deliveries(slots, status.tz, energy), client, tally, ledger,
                           config.concurrency, progress)
        return
    if config.backfill:
        await pump(slot_deliveries(backfill_slots(now, status.tz), status.tz, energy),
                   client, tally, ledger, config.concurrency)
    await pump(live_deliveries(now, status.tz, energy, stop, clock), client, tally, ledger,
               config.concurrency)


def _warn_if_too_old(slots: Sequence[tuple[date, int]], status: ServerStatus,
                     now: datetime) -> None:
    """Say so when some replayed packets are older than the server's late window."""
    if slots and status.late_days is not None:
        oldest = send_time(slots[0][0], slots[0][1], status.tz)
        if oldest < now - timedelta(days=status.late_days):
            print(f"simulator: packets older than {status.late_days} days will be refused",
                  file=sys.stderr)
