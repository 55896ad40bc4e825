"""MeterMatrix server: meters post to /meter, residents and management use the web pages.

    python server.py [--port 8000] [--data-dir ./data] [--timezone UTC] [--no-demo]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import subprocess
import sys
from pathlib import Path

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD
from metermatrix.clock import offset_clock
from metermatrix.demo import demo_yesterday, load_demo
from metermatrix.gcsettings import settle_after_start
from metermatrix.logfilter import limit_repeats
from metermatrix.routines import open_day_for
from metermatrix.service import MeterService
from metermatrix.settings import Settings, add_arguments, settings_from_args
from metermatrix.storage import StorageError, open_storage
from metermatrix.voila import Dashboards
from metermatrix.web.app import make_app
from metermatrix.web.connections import MeterHTTPServer
from metermatrix.web.management import management_routes
from metermatrix.web.operations import watch_server
from metermatrix.web.proxy import proxy_routes
from metermatrix.workers import run_workers

log = logging.getLogger("metermatrix.server")
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """Settings from the command line, plus the options that are not settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--with-simulator", action="store_true",
                        help="also run simulator.py --backfill against this server (demo)")
    args = parser.parse_args(argv)
    try:
        return settings_from_args(args), args
    except ValueError as error:
        parser.error(str(error))
        raise


def start_simulator(settings: Settings) -> subprocess.Popen[bytes]:
    """A live simulator of the demo fleet feeding this server, on the server's clock."""
    url = f"http://{settings.host}:{settings.port}"
    return subprocess.Popen([sys.executable, str(HERE / "simulator.py"), "--server", url,
                             "--data-dir", str(settings.data_dir), "--backfill",
                             "--clock-offset-s", repr(settings.clock_offset_s)])


def load_demo_data(settings: Settings) -> None:
    """Load testing_data/ into an empty database (with --demo)."""
    storage = open_storage(settings.data_dir, database=settings.database)
    try:
        now = offset_clock(settings.clock_offset_s)()
        load_demo(storage, demo_yesterday(open_day_for(now, settings)))
    finally:
        storage.close()


async def serve(settings: Settings, with_simulator: bool = False,
                sockets: list[socket.socket] | None = None, worker: int = 0) -> None:
    """Run the server (or one worker of ``--workers``, on the parent's ``sockets``) until
    SIGINT or SIGTERM, then shut down cleanly."""
    if settings.demo and sockets is None:
        load_demo_data(settings)
    service = MeterService(settings, clock=offset_clock(settings.clock_offset_s))
    await service.start()
    dashboards = Dashboards(settings) if settings.dashboards else None
    if dashboards is not None:
        dashboards.start()
    app = make_app(service, extra_routes=management_routes() + proxy_routes(dashboards))
    settle_after_start()
    server = MeterHTTPServer(app, max_body_size=1024 * 1024, xheaders=False,
                             idle_connection_timeout=settings.idle_timeout_s,
                             body_timeout=settings.body_timeout_s,
                             max_connections=settings.max_connections)
    watch_server(service, lambda: server.open_connections)
    if sockets is None:
        server.listen(settings.port, settings.host)
    else:
        server.add_sockets(sockets)
    url = f"http://{settings.host}:{settings.port}"
    where = f"worker {worker} of {settings.workers}, " if sockets is not None else ""
    print(f"MeterMatrix listening on {url}/  ({where}data in {settings.data_dir})", flush=True)
    if worker:
        with_simulator = False
    print(f"  residents:  {url}/register  {url}/profile", flush=True)
    if dashboards is not None:
        print(f"  management: {url}/management-dashboard/  {url}/analysis/", flush=True)
    if settings.demo:
        print(f"  demo resident login:   meter 999999999, password {DEMO_PASSWORD}", flush=True)
        print(f"  demo management login: {DEMO_MANAGER} / {DEMO_PASSWORD} at "
              f"{url}/management/login", flush=True)
    simulator = start_simulator(settings) if with_simulator else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    if simulator is not None:
        simulator.terminate()
    server.stop()
    await server.close_all_connections()
    if dashboards is not None:
        await dashboards.stop()
    await service.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    settings, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_repeats()
    if settings.workers > 1:
        if settings.demo:
            load_demo_data(settings)
        run_workers(settings, lambda sockets, index: asyncio.run(
            serve(settings, args.with_simulator, sockets, index)))
        return
    try:
        asyncio.run(serve(settings, with_simulator=args.with_simulator))
    except StorageError as error:
        sys.exit(f"server.py: {error}")


if __name__ == "__main__":
    main()
