"""A PostgreSQL server of the test's own, to restart and crash at will.

The machine's shared server (127.0.0.1:5432) serves every other test, so fault tests never touch
it: they ``initdb`` a cluster in a temp directory owned by the ``postgres`` user (PostgreSQL
refuses to run as root) and start it on a free loopback port with ``pg_ctl``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

_BIN_DIRS = [
    *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
    Path("/usr/local/bin"),
    Path("/usr/bin"),
]


def _tool(name: str) -> str | None:
    for directory in _BIN_DIRS:
        candidate = directory / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def available() -> str | None:
    """None when a private server can be started here, else why not."""
    if _tool("initdb") is None or _tool("pg_ctl") is None:
        return "initdb/pg_ctl are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """One throw-away cluster: ``start``, ``restart``, ``crash`` (SIGKILL of the postmaster
    and its backends, as a host crash looks to clients), ``stop``."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mlgrid-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self.log = self.directory / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            os.chmod(self.directory, 0o700)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, cwd=self.directory, timeout=120
        )

    def init(self) -> PrivatePostgres:
        self._run(
            str(_tool("initdb")),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.directory}'\nfsync = on\n"
                "max_connections = 100\nshared_buffers = 32MB\n"
            )
        return self

    def start(self) -> None:
        self._run(
            str(_tool("pg_ctl")),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        self._run(str(_tool("pg_ctl")), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """A clean restart: every client connection is ended by the server."""
        self.stop("fast")
        self.start()

    def crash(self) -> None:
        """SIGKILL of the whole server (postmaster and backends), then start it again: what is
        committed must survive, what was not is rolled back by recovery."""
        pid_file = self.data / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True
        ).stdout.split()
        for pid in [postmaster, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(postmaster, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.start()

    def wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
