"""The targets: a server and the client that drives it. The servers are ``mlflow server`` (as
shipped, and with TCP_NODELAY forced on) and ``mlgrid up``, each on its own fresh PostgreSQL
database, started and stopped by the controller; the clients are mlgrid's SDK and the unmodified
``mlflow`` client (against MLflow's server, and against mlgrid through the plugin or REST).

Runs in mlgrid's venv (psutil, psycopg, grpc are there); MLflow's server runs from its own venv.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from bench import mlflow_env

ROOT = Path(__file__).resolve().parent.parent
NODELAY_DIR = Path(__file__).resolve().parent / "nodelay"
ADMIN_URL = os.environ.get(
    "MLGRID_BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Target:
    """One column of the table: which server runs, and which client talks to it how."""

    title: str
    #: "mlflow" (``mlflow server`` from .venv-mlflow) or "mlgrid" (``mlgrid up``).
    server: str
    #: The SDK the workload calls: "mlflow" (the unmodified client) or "mlgrid".
    sdk: str
    #: How the client reaches the server: "http" (MLflow's server), "grpc" (mlgrid's SDK),
    #: "plugin" (``mlgrid://`` through mlgrid's MLflow plugin), "rest" (mlgrid's REST port).
    way: str
    #: The server authenticates every call and checks permissions (MLGRID_AUTH=true); the
    #: client calls as a user that is not an admin, with an access token.
    auth: bool = False


#: The targets, in run order. The MLflow server's client runs in .venv-mlflow; every other client
#: in mlgrid's venv, where `make venv` installs the real ``mlflow`` package beside the plugin.
TARGETS: dict[str, Target] = {
    "mlflow": Target("MLflow (default)", "mlflow", "mlflow", "http"),
    "mlflow-nodelay": Target("MLflow (TCP_NODELAY)", "mlflow", "mlflow", "http"),
    "mlgrid": Target("mlgrid", "mlgrid", "mlgrid", "grpc"),
    "mlgrid-plugin": Target("mlflow → mlgrid plugin", "mlgrid", "mlflow", "plugin"),
    "mlgrid-rest": Target("mlflow → mlgrid REST", "mlgrid", "mlflow", "rest"),
    # The issue asks what auth costs the tracking phases (at most 10 %): `mlgrid` again, with
    # auth on, in the same run (report.auth_rows).
    "mlgrid-auth": Target("mlgrid (auth on)", "mlgrid", "mlgrid", "grpc", auth=True),
}
#: Shorthands for --targets.
TARGET_GROUPS: dict[str, tuple[str, ...]] = {
    # Every target whose client is the unmodified `mlflow` package: the comparison of
    # MLflow's server with mlgrid through the plugin and through the REST port.
    "mlflow-client": tuple(name for name, t in TARGETS.items() if t.sdk == "mlflow"),
    # mlgrid with auth off and on: the auth table alone.
    "auth": ("mlgrid", "mlgrid-auth"),
}
#: The admin ``mlgrid up`` creates on the auth-on target (for the set-up calls only), and the
#: user the workload runs as there: not an admin, so every call's permissions are checked.
AUTH_ADMIN = ("bench-admin", "bench-admin-password")
AUTH_USER = ("bench-user", "bench-user-password")
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """Creates an empty database for one target and drops it afterwards; yields its URL."""
    name = f"bench_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({exc}); start it or set "
            "MLGRID_BENCH_POSTGRES_ADMIN_URL"
        ) from None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


@dataclass
class Server:
    """A started target: its client URI, the startup figures, and the process to stop."""

    target: str
    uri: str
    process: subprocess.Popen[bytes]
    command: list[str]
    startup_seconds: float = 0.0
    startup_processes: int = 0
    startup_rss_mib: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)
    #: Variables the client worker gets (the auth-on target's access token).
    client_env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """SIGTERM to the server's process group; whatever of it is left after 20 s gets SIGKILL
        (MLflow's job consumers can outlive the server process they were started by)."""
        group = self.process.pid  # started with start_new_session: its pid is the group id
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _group_alive(group):
            self.process.poll()
            time.sleep(0.1)
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _command(
    target: str, db_url: str, port: int, rest_port: int, workdir: Path
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    env.pop("PYTHONPATH", None)
    if TARGETS[target].server == "mlgrid":
        mlgrid = Path(sys.executable).with_name("mlgrid")
        command = [
            str(mlgrid), "up", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", db_url,
            "--default-artifact-root", (workdir / "mlgrid-artifacts").as_uri(),
            # MLflow's REST API on a free port, not the default 5000 (which may be taken).
            "--rest-port", str(rest_port),
        ]  # fmt: skip
        if TARGETS[target].auth:
            env.update(
                MLGRID_AUTH="true",
                MLGRID_AUTH_SECRET=secrets.token_urlsafe(32),
                MLGRID_AUTH_ADMIN_USERNAME=AUTH_ADMIN[0],
                MLGRID_AUTH_ADMIN_PASSWORD=AUTH_ADMIN[1],
            )
        return command, env
    command = [
        str(mlflow_env.VENV / "bin" / "mlflow"), "server", "--host", "127.0.0.1",
        "--port", str(port), "--backend-store-uri", db_url,
        "--serve-artifacts", "--artifacts-destination", (workdir / "mlflow-artifacts").as_uri(),
    ]  # fmt: skip
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if target == "mlflow-nodelay":
        env["PYTHONPATH"] = str(NODELAY_DIR)
        env["MLGRID_BENCH_NODELAY_LOG"] = str(workdir / "nodelay.log")
    return command, env


def client_uri(target: str, port: int, rest_port: int) -> str:
    """The URI the target's client is given (MLflow's tracking URI, or the SDK's)."""
    way = TARGETS[target].way
    if way == "grpc":
        return f"grpc://127.0.0.1:{port}"
    if way == "plugin":
        return f"mlgrid://127.0.0.1:{port}"
    return f"http://127.0.0.1:{rest_port if way == 'rest' else port}"


def _mlflow_ready(uri: str) -> bool:
    try:
        with urllib.request.urlopen(
            f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=2
        ) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _rest_ready(uri: str) -> bool:
    """mlgrid's REST port answers MLflow's health check."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _basic(user: tuple[str, str]) -> list[tuple[str, str]]:
    encoded = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return [("authorization", f"Basic {encoded}")]


def _mlgrid_ready(target: str, artifact_root: str, auth: bool = False) -> bool:
    """The gateway reports SERVING and each service answers a cheap call through it (as the
    admin, when auth is on)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as apb
    from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as agrpc
    from mlgrid.api.registry.v1 import registry_service_pb2 as rpb
    from mlgrid.api.registry.v1 import registry_service_pb2_grpc as rgrpc
    from mlgrid.api.tracking.v1 import tracking_service_pb2 as tpb
    from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as tgrpc

    def answers(call: object, request: object, *accepted: grpc.StatusCode) -> bool:
        # The service itself must answer: an error the gateway makes up while the service is
        # not routed yet (no backend for the scheme) does not count.
        try:
            call(request, timeout=2, metadata=_basic(AUTH_ADMIN) if auth else None)  # type: ignore[operator]
        except grpc.RpcError as err:
            return err.code() in accepted
        return True

    with grpc.insecure_channel(target) as channel:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
        return (
            health.status == health_pb2.HealthCheckResponse.SERVING
            and answers(
                tgrpc.TrackingServiceStub(channel).SearchExperiments,
                tpb.SearchExperimentsRequest(max_results=1),
            )
            and answers(
                rgrpc.RegistryServiceStub(channel).SearchRegisteredModels,
                rpb.SearchRegisteredModelsRequest(max_results=1),
            )
            and answers(
                agrpc.ArtifactsServiceStub(channel).ListArtifacts,
                apb.ListArtifactsRequest(artifact_uri=artifact_root),
                grpc.StatusCode.NOT_FOUND,
            )
        )


@contextmanager
def started(target: str, db_url: str, workdir: Path, timeout: float = 180) -> Iterator[Server]:
    """Starts ``target`` on ``db_url``, waits until it is healthy, measures startup, stops it."""
    port, rest_port = free_port(), free_port()
    while rest_port == port:
        rest_port = free_port()
    command, env = _command(target, db_url, port, rest_port, workdir)
    log = (workdir / f"{target}-server.log").open("wb")
    begin = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = client_uri(target, port, rest_port)
    server = Server(target, uri, process, command)
    try:
        artifact_root = (workdir / "mlgrid-artifacts").as_uri()
        (workdir / "mlgrid-artifacts").mkdir(exist_ok=True)
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{target} exited with {process.returncode} while starting; see {log.name}"
                )
            if TARGETS[target].server == "mlflow":
                ready = _mlflow_ready(uri)
            else:
                ready = _mlgrid_ready(
                    f"127.0.0.1:{port}", artifact_root, TARGETS[target].auth
                ) and (TARGETS[target].way != "rest" or _rest_ready(uri))
            if ready:
                break
            if time.perf_counter() - begin > timeout:
                raise RuntimeError(
                    f"{target} was not healthy after {timeout:.0f} s; see {log.name}"
                )
            time.sleep(0.05)
        server.startup_seconds = time.perf_counter() - begin
        procs = process_tree(process.pid)
        server.startup_processes = len(procs)
        server.startup_rss_mib = tree_rss(procs) / MIB
        if TARGETS[target].auth:
            server.client_env = {"MLGRID_TRACKING_TOKEN": _user_token(f"127.0.0.1:{port}")}
        yield server
    finally:
        server.stop()
        log.close()
        nodelay_log = workdir / "nodelay.log"
        if target == "mlflow-nodelay":
            applied = nodelay_log.read_text().count("\n") if nodelay_log.exists() else 0
            server.notes["nodelay_processes"] = str(applied)


def _user_token(address: str) -> str:
    """Creates the auth-on target's workload user (as its admin) and an access token of it."""
    import grpc

    from mlgrid.api.auth.v1 import auth_service_pb2 as apb
    from mlgrid.api.auth.v1 import auth_service_pb2_grpc as agrpc

    with grpc.insecure_channel(address) as channel:
        stub = agrpc.AuthServiceStub(channel)
        stub.CreateUser(
            apb.CreateUserRequest(username=AUTH_USER[0], password=AUTH_USER[1]),
            metadata=_basic(AUTH_ADMIN),
            timeout=30,
        )
        answer = stub.CreateAccessToken(
            apb.CreateAccessTokenRequest(name="bench"), metadata=_basic(AUTH_USER), timeout=30
        )
    return str(answer.token)


class RssSampler:
    """Samples the RSS of a server's processes in a thread; reports the largest growth.

    ``match`` restricts it to processes whose command line contains that word (mlgrid's
    artifacts service); when none matches, every process of the tree counts.
    """

    def __init__(self, pid: int, match: str | None = None, interval: float = 0.05) -> None:
        procs = process_tree(pid)
        chosen = [p for p in procs if match and _cmdline_has(p, match)]
        self.procs = chosen or procs
        self.matched = bool(chosen)
        self.interval = interval
        self.baseline = {p.pid: _rss(p) for p in self.procs}
        self.peak = dict(self.baseline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for proc in self.procs:
                self.peak[proc.pid] = max(self.peak[proc.pid], _rss(proc))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return max(self.peak[pid] - self.baseline[pid] for pid in self.baseline) / MIB


def _rss(proc: psutil.Process) -> int:
    try:
        rss: int = proc.memory_info().rss
        return rss
    except psutil.NoSuchProcess:
        return 0


def _cmdline_has(proc: psutil.Process, word: str) -> bool:
    try:
        return word in proc.cmdline()
    except psutil.NoSuchProcess:
        return False
