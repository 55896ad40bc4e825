"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl in a temp folder.

The cluster runs as an unprivileged user (PostgreSQL refuses to run as root: as root the
commands run through ``runuser`` as ``nobody``), listens on 127.0.0.1 on a free port,
and is stopped and deleted at the end of the session. Each test gets its own database.
Without PostgreSQL binaries the tests that need them skip, with the reason in pytest's
summary; with METERMATRIX_REQUIRE_POSTGRES=1 (``.ci/run``) they fail instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Set to 1 to make tests that need PostgreSQL fail rather than skip without it.
ENV_REQUIRE = "METERMATRIX_REQUIRE_POSTGRES"
#: A folder with the PostgreSQL binaries to use instead of searching for them.
ENV_BIN = "METERMATRIX_POSTGRES_BIN"
SUPERUSER = "metermatrix"


def find_bin_dir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: $METERMATRIX_POSTGRES_BIN if set, else
    on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest first)."""
    chosen = os.environ.get(ENV_BIN)
    if chosen is not None:
        return Path(chosen) if (Path(chosen) / "initdb").exists() else None
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True,
                         key=lambda path: int(Path(path).parent.name.split(".")[0])):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A running PostgreSQL cluster owned by the test session."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="metermatrix-pg-"))
        self.data = self.folder / "cluster"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # postgres will not run as root
            self.as_user = ["runuser", "-u", "nobody", "--"]
            os.chmod(self.folder, 0o755)
            shutil.chown(self.folder, "nobody")

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_user, *command], capture_output=True, text=True,
                              cwd=self.folder)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> Cluster:
        """initdb (trust on 127.0.0.1 only), then pg_ctl start and wait."""
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   f"'{self.folder}' -c fsync=off -c full_page_writes=off -c max_connections=200"
                   " -c shared_buffers=64MB")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.folder / "server.log"), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the cluster now and delete its folder."""
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The connection URL of one database of the cluster."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by create_database, ending its connections first."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def missing_postgres(reason: str) -> None:
    """Skip the test, or fail it when METERMATRIX_REQUIRE_POSTGRES=1."""
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{reason} ({ENV_REQUIRE}=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's PostgreSQL cluster, started on first use."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        missing_postgres("no PostgreSQL binaries (initdb, pg_ctl) on PATH or in "
                         "/usr/lib/postgresql/*/bin")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_postgres("psycopg is not installed")
    assert bin_dir is not None
    cluster = Cluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_database(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh database, dropped afterwards."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)
