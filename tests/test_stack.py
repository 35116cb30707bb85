"""``mlgrid up`` as a real process: the whole stack starts, answers, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import mlgrid
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.entities import Metric
from mlgrid.exceptions import TemporarilyUnavailable
from mlgrid.transport import Transport
from mlgrid_services.common.app import available_services

#: Start-to-healthy target for the whole stack on this 2-core machine is 3 s; tests run two at a
#: time next to other work, so they allow more and report the measured figure.
START_LIMIT_S = 15.0
#: Bound on the summed RSS of every process of the stack (six processes): the 400 MiB target.
#: Measured by hand at load ~9 on 2026-12-06: 353 MiB on SQLite, 377 MiB on a fresh PostgreSQL
#: database (the supervisor imports no gRPC, and a service migrates a database in a child
#: process, so Alembic does not stay loaded); it was 480 while those were 387 and 437 MiB.
RSS_LIMIT_BYTES = 400 * 1024 * 1024


@dataclass
class UpProcess:
    proc: subprocess.Popen[str]
    endpoint: str
    started_in: float
    banner: str
    #: The command-line arguments naming the store ([] for the default SQLite file).
    store_args: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.endpoint.removeprefix("grpc://")

    def processes(self) -> list[psutil.Process]:
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]


def start_up(cwd: Path, *args: str) -> UpProcess:
    """Runs ``mlgrid up --port 0`` in ``cwd`` and waits for its "up" banner."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlgrid.cli.main", "up", "--port", "0", "--grace", "5", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    banner = []
    for line in proc.stdout:
        banner.append(line)
        match = re.match(r"mlgrid is up at (grpc://\S+)", line)
        if match:
            elapsed = time.monotonic() - started
            for _ in range(4):  # store, artifact root, export hint, Ctrl-C hint
                banner.append(proc.stdout.readline())
            return UpProcess(proc, match.group(1), elapsed, "".join(banner))
    proc.wait(timeout=10)
    pytest.fail(f"mlgrid up exited with {proc.returncode} before it was up:\n{''.join(banner)}")


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Waits for ``processes`` to exit; returns the ones still alive (not zombies)."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[UpProcess]:
    up = start_up(tmp_path)
    yield up
    if up.proc.poll() is None:
        for process in up.processes()[::-1]:
            process.kill()
        up.proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UpProcess]:
    """``mlgrid up`` on its default SQLite store, and on a fresh PostgreSQL database."""
    args: list[str] = []
    if request.param == "postgresql":
        args = ["--backend-store-uri", request.getfixturevalue("fresh_postgres_url")]
    up = start_up(tmp_path, *args)
    up.store_args = args
    yield up
    if up.proc.poll() is None:
        for process in up.processes()[::-1]:
            process.kill()
        up.proc.wait(timeout=10)


def test_up_serves_every_service_through_one_port_and_stops_on_sigterm(
    any_store_stack: UpProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    stack = any_store_stack
    on_sqlite = request.node.callspec.params["any_store_stack"] == "sqlite"
    assert f"export MLGRID_TRACKING_URI={stack.endpoint}" in stack.banner
    assert (tmp_path / "mlgrid-artifacts").resolve().as_uri() in stack.banner
    assert stack.started_in < START_LIMIT_S, f"start to healthy took {stack.started_in:.2f} s"
    processes = stack.processes()
    names = [" ".join(p.cmdline()) for p in processes[1:]]
    for store_uri in stack.store_args[1:]:  # credentials in a URI stay off command lines
        assert all(store_uri not in name for name in names)
    for service in ["gateway", *available_services()]:
        assert any(f"server {service}" in n for n in names), f"no {service} process in {names}"
    total_rss = sum(p.memory_info().rss for p in processes)
    print(
        f"mlgrid up: {len(processes)} processes, healthy after {stack.started_in:.2f} s, "
        f"summed RSS {total_rss / 2**20:.0f} MiB"
    )
    assert total_rss < RSS_LIMIT_BYTES, f"summed RSS {total_rss / 2**20:.0f} MiB"

    with grpc.insecure_channel(stack.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        tracking = trk_grpc.TrackingServiceStub(channel)
        created = tracking.CreateExperiment(
            trk.CreateExperimentRequest(name="up-smoke"), timeout=10
        )
        got = tracking.GetExperiment(
            trk.GetExperimentRequest(experiment_id=created.experiment_id), timeout=10
        )
    assert got.experiment.name == "up-smoke"
    # SQLite in the working directory by default; nothing there when on PostgreSQL.
    assert (tmp_path / "mlgrid.db").exists() is on_sqlite

    # The SDK calls tracking, registry and artifacts at their own loopback addresses (the
    # gateway's direct routes); the channels it leaves open do not hold up the stop below.
    transport = Transport(stack.endpoint)
    client = mlgrid.MlflowClient(stack.endpoint, transport=transport)
    run = client.create_run(created.experiment_id)
    client.log_batch(run.info.run_id, metrics=[Metric("m", float(i), i, i) for i in range(40)])
    client.create_registered_model("up-model")
    (tmp_path / "note.txt").write_text("through a tunnel")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["note.txt"]
    assert len(client.get_metric_history(run.info.run_id, "m")) == 40
    assert transport._tunnels is not None
    assert {key[0] for key in transport._tunnels.stubs} == {"tracking", "registry", "artifacts"}
    assert transport._tunnels.direct == {("tracking", ""), ("registry", ""), ("artifacts", "file:")}

    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=30) == 0
    assert wait_gone(processes, timeout=5) == []
    transport.close()


def _read_until(stack: UpProcess, text: str, timeout: float) -> str:
    """Reads the stack's output until a line containing ``text``; returns what was read."""
    assert stack.proc.stdout is not None
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert stack.proc.stdout is not None
        for line in stack.proc.stdout:
            seen.append(line)
            if text in line:
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout), f"no {text!r} in:\n{''.join(seen)}"
    return "".join(seen)


def _eventually(call: Callable[[], object], seconds: float = 15.0) -> None:
    """Retries ``call`` while it fails with a gRPC error, raw or as the SDK's (a channel
    reconnecting after a restart backs off for a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            call()
            return
        except (grpc.RpcError, TemporarilyUnavailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _tracking_answers(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        tracking = trk_grpc.TrackingServiceStub(channel)
        created = tracking.CreateExperiment(
            trk.CreateExperimentRequest(name=f"after-{time.time_ns()}"), timeout=10
        )
    return created.experiment_id


def test_a_child_that_dies_is_restarted_and_the_stack_says_so(stack: UpProcess) -> None:
    # A client already calling tracking straight at its address (a direct route).
    transport = Transport(stack.endpoint)
    client = mlgrid.MlflowClient(stack.endpoint, transport=transport)
    run_id = client.create_run(_tracking_answers(stack.target)).info.run_id
    client.log_metric(run_id, "before", 1.0)
    assert transport._tunnels is not None and ("tracking", "") in transport._tunnels.direct
    processes = stack.processes()
    victim = next(p for p in processes[1:] if "server tracking" in " ".join(p.cmdline()))
    victim.kill()
    out = _read_until(stack, "tracking is serving again", timeout=30)
    assert f"the tracking process (pid {victim.pid}) exited with code -9; restarting it" in out
    assert stack.proc.poll() is None, "the stack stopped"
    _eventually(lambda: _tracking_answers(stack.target))
    # The restarted service bound the same port: that client's calls reach it again.
    _eventually(lambda: client.log_metric(run_id, "after", 2.0))
    assert client.get_run(run_id).data.metrics == {"before": 1.0, "after": 2.0}
    transport.close()
    # The gateway too: it comes back on the same port, and routes to every service again.
    gateway = next(p for p in stack.processes()[1:] if "server gateway" in " ".join(p.cmdline()))
    gateway.kill()
    _read_until(stack, "gateway is serving again", timeout=30)
    _eventually(lambda: _tracking_answers(stack.target))
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=30) == 0


def test_children_stop_when_the_parent_is_killed(stack: UpProcess) -> None:
    processes = stack.processes()
    os.kill(stack.proc.pid, signal.SIGKILL)
    stack.proc.wait(timeout=10)
    # Each child sees its stdin pipe close and stops on its own: no orphans.
    left = wait_gone(processes[1:], timeout=30)
    assert [" ".join(p.cmdline()) for p in left] == []


def test_up_with_no_direct_routes_tunnels_every_route(tmp_path: Path) -> None:
    up = start_up(tmp_path, "--no-direct-routes")
    try:
        with grpc.insecure_channel(up.target) as channel:
            info = common_pb2_grpc.BackendInfoServiceStub(channel).GetBackendInfo(
                common_pb2.GetBackendInfoRequest(), timeout=10
            )
        assert info.tunnel_port > 0 and list(info.direct_routes) == []
        transport = Transport(up.endpoint)
        client = mlgrid.MlflowClient(up.endpoint, transport=transport)
        run_id = client.create_run(_tracking_answers(up.target)).info.run_id
        client.log_metric(run_id, "loss", 0.25)
        assert client.get_run(run_id).data.metrics == {"loss": 0.25}
        assert transport._tunnels is not None and transport._tunnels.direct == set()
        assert {key[0] for key in transport._tunnels.stubs} == {"tracking"}
        transport.close()
    finally:
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=30) == 0
