"""Voila in child processes: one per dashboard notebook, reachable only through the proxy.

Each child listens on 127.0.0.1 on a free port, demands a token made afresh at every start
(the proxy sends it; nobody else knows it), uses the public path as its ``base_url``, keeps a
small pool of preheated kernels, culls kernels nobody is connected to, and renders with the
``metermatrix`` template, which needs nothing from the internet. A child that dies is
started again. The kernels find the data folder in METERMATRIX_DATA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metermatrix.clock import ENV_CLOCK_OFFSET
from metermatrix.settings import Settings

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
NOTEBOOKS = PACKAGE.parent / "notebooks"
#: Holds ``voila/templates/metermatrix`` (added to JUPYTER_PATH of the children).
JUPYTER_DATA = PACKAGE / "data" / "jupyter"
#: Kernels nobody is connected to are shut down after this long without activity [s].
CULL_IDLE_S = 300
CULL_INTERVAL_S = 60
_RUNNING = "is running at"
#: A dashboard kernel prints this to its stderr once it waits for a page request.
KERNEL_WARM_MARKER = "metermatrix: dashboard kernel warm"
#: Environment variables through which the kernels learn where the data is.
ENV_DATA_DIR = "METERMATRIX_DATA_DIR"
ENV_TIMEZONE = "METERMATRIX_TIMEZONE"
ENV_DATABASE = "METERMATRIX_DATABASE"
#: Niceness of Voila and its kernels: meters' packets go first when CPUs are busy.
NICENESS = 10
#: A used preheated kernel is replaced after this delay, not while its page loads [s].
REFILL_DELAY_S = 10.0
#: Runs Voila in the child after asking Linux for SIGTERM when the server dies (even by
#: SIGKILL) and lowering its priority; argv: server pid, niceness, then Voila's arguments.
_LAUNCHER = """
import contextlib, ctypes, os, signal, sys
with contextlib.suppress(OSError, AttributeError):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    sys.exit("the server is gone")
with contextlib.suppress(OSError):
    os.nice(int(sys.argv[2]))
sys.argv = ["voila", *sys.argv[3:]]
from voila.app import main
main()
"""


@dataclass(frozen=True)
class Notebook:
    """A notebook served as a dashboard at ``public_path`` ("/management-dashboard/")."""

    path: Path
    public_path: str
    title: str
    description: str


#: The dashboards the server serves, management login required for all of them.
DASHBOARDS = (
    Notebook(NOTEBOOKS / "management.ipynb", "/management-dashboard/", "Management dashboard",
             "Region-wise consumption for a period, the map, data completeness, silent meters"
             " and top consumers."),
    Notebook(NOTEBOOKS / "consumption.ipynb", "/analysis/", "Consumption analysis",
             "Chosen meters: half-hourly heat map, load profile, daily totals and the"
             " comparison with their region."),
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def voila_config(notebook: Notebook, port: int, token: str, kernels: int) -> dict[str, Any]:
    """The traitlets configuration of one Voila child (written as its voila.json)."""
    return {
        "Voila": {"ip": "127.0.0.1", "port": port, "port_retries": 0, "open_browser": False,
                  "base_url": notebook.public_path, "token": token},
        "VoilaConfiguration": {"preheat_kernel": kernels > 0,
                               "default_pool_size": max(kernels, 0),
                               "template": "metermatrix", "file_allowlist": [],
                               "show_tracebacks": False},
        "MappingKernelManager": {"cull_idle_timeout": CULL_IDLE_S,
                                 "cull_interval": CULL_INTERVAL_S, "cull_connected": False},
        "VoilaKernelManager": {"fill_delay": REFILL_DELAY_S},
        # Two Voila children choose their kernels' ports independently, so a port can be
        # taken by the other's kernel; with cached ports a restart tried the same taken
        # port five times and the dashboard's kernel died. Uncached, a restart draws new
        # ports.
        "KernelManager": {"cache_ports": False},
    }


def child_environment(settings: Settings) -> dict[str, str]:
    """Environment of a Voila child and its kernels (no Agg backend: plots must show)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("MPLBACKEND", "JUPYTER_TOKEN", "QUERY_STRING")}
    env[ENV_DATA_DIR] = str(settings.data_dir.resolve())
    env[ENV_TIMEZONE] = settings.timezone
    env[ENV_DATABASE] = settings.database
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(JUPYTER_DATA),
                                                        env.get("JUPYTER_PATH")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE.parent),
                                                      env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env[ENV_CLOCK_OFFSET] = repr(settings.clock_offset_s)
    return env


class VoilaProcess:
    """One notebook's Voila child: started, watched, restarted when it dies, stopped."""

    def __init__(self, notebook: Notebook, settings: Settings) -> None:
        self.notebook = notebook
        self.settings = settings
        self.port = 0
        self.token = ""
        self.restarts = 0
        self.process: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def upstream(self) -> str:
        """Base URL of the child, e.g. ``http://127.0.0.1:40123/management-dashboard/``."""
        return f"http://127.0.0.1:{self.port}{self.notebook.public_path}"

    @property
    def ready(self) -> bool:
        """True while the child runs with its kernel pool filled."""
        return self._ready.is_set()

    def start(self) -> None:
        """Start the child and the task that restarts it."""
        self._supervisor = asyncio.ensure_future(self._supervise())

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the child serves with a full kernel pool; False after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _supervise(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                code = await self._run_once()
            except OSError:
                log.exception("could not start Voila for %s", self.notebook.public_path)
                code = -1
            self._ready.clear()
            if self._stopping:
                return
            if time.monotonic() - started > 300:
                self.restarts = 0
            self.restarts += 1
            delay_s = min(30.0, 0.5 * 2 ** self.restarts)
            log.error("Voila for %s exited with %s; restarting in %.1f s",
                      self.notebook.public_path, code, delay_s)
            await asyncio.sleep(delay_s)

    async def _run_once(self) -> int:
        self.port, self.token = free_port(), secrets.token_urlsafe(32)
        kernels = self.settings.voila_kernels
        with tempfile.TemporaryDirectory(prefix="metermatrix-voila-") as config_dir:
            config = Path(config_dir) / "voila.json"
            config.write_text(json.dumps(voila_config(self.notebook, self.port, self.token,
                                                      kernels)))
            config.chmod(0o600)
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _LAUNCHER, str(os.getpid()), str(NICENESS),
                str(self.notebook.path),
                f"--Voila.config_file_paths={config_dir}",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=child_environment(self.settings),
                cwd=str(self.notebook.path.parent), start_new_session=True)
            log.info("Voila for %s started (pid %d, port %d)", self.notebook.public_path,
                     self.process.pid, self.port)
            await self._follow_output(self.process, kernels)
        return await self.process.wait()

    async def _follow_output(self, process: asyncio.subprocess.Process, kernels: int) -> None:
        """Relay the child's log lines; mark it ready once it listens and, with preheating,
        once every kernel of its first pool is warm (has run up to ``wait_for_request``)."""
        assert process.stdout is not None
        child_log = logging.getLogger(f"{__name__}.{self.notebook.path.stem}")
        listening, warm = False, 0
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            child_log.info("%s", text)
            listening = listening or _RUNNING in text
            warm += KERNEL_WARM_MARKER in text
            if listening and warm >= kernels:
                self._ready.set()

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and stop restarting it."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor


class Dashboards:
    """All dashboard children of one server, by public path."""

    def __init__(self, settings: Settings, notebooks: tuple[Notebook, ...] = DASHBOARDS) -> None:
        self.children = {nb.public_path: VoilaProcess(nb, settings) for nb in notebooks}

    def start(self) -> None:
        """Start every child (readiness is awaited per request by the proxy)."""
        for child in self.children.values():
            child.start()

    async def stop(self) -> None:
        """Stop every child."""
        await asyncio.gather(*(child.stop() for child in self.children.values()))
