"""The image as an operator builds and runs it, on the real container engine (Podman serving the
Docker API; ../shared/CONTAINERS.md): `make image` builds deploy/Dockerfile from the repository,
and the whole stack (migrations, four services, the gateway) runs from it against PostgreSQL,
logging a run, a metric, an artifact and a registered model through the gateway.

The base image is the engine fixture's Debian bookworm + python3 (no public registry can be
reached here), given as BASE_IMAGE, exactly as an operator would pick another base. The host's
CA bundle reaches pip through a build secret (this machine's route to the package index
intercepts TLS); nothing of it stays in the image.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlgrid import MlflowClient

from .cli_args import ROOT

#: A password with characters a URI must encode; PostgreSQL here trusts local connections, so
#: it is accepted and must only never be printed.
PASSWORD = "img:pw@/x"
#: The first test builds the image in its setup (about two minutes here, more on a busy machine;
#: the mlgrid_image fixture is in conftest.py, shared with test_compose_up.py).
pytestmark = pytest.mark.timeout(1200)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(client: Any, image: str, args: list[str], **kwargs: Any) -> tuple[int, str]:
    """Runs a container to its end; (exit code, its output)."""
    container = client.containers.run(image, args, detach=True, network_mode="host", **kwargs)
    try:
        code = container.wait(timeout=300)["StatusCode"]
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def test_the_image_runs_unprivileged_and_under_any_user_id(
    container_engine: Any, mlgrid_image: str
) -> None:
    client = container_engine.client()
    code, out = _run(client, mlgrid_image, [], entrypoint=["id", "-u"])
    assert (code, out.strip()) == (0, "10001")
    # An arbitrary id in group 0 (OpenShift): mlgrid starts, its home is writable, and git and
    # ssh are there for git@ project sources.
    script = (
        "mlgrid-entrypoint --version && touch ~/.mlgrid/probe && echo home-writable && "
        "git --version && ssh -V 2>&1"
    )
    code, out = _run(client, mlgrid_image, ["-c", script], entrypoint=["sh"], user="1000650000:0")
    assert code == 0, out
    assert "mlgrid, version" in out and "home-writable" in out
    assert "git version" in out and "OpenSSH" in out
    # Only what the services import: no test or build tooling in the image.
    code, out = _run(client, mlgrid_image, ["-m", "pip", "list", "--format=freeze"],
                     entrypoint=["python3"])  # fmt: skip
    installed = {line.split("==")[0].lower() for line in out.split()}
    assert code == 0 and {"grpcio", "sqlalchemy", "psycopg", "kubernetes", "docker"} <= installed
    assert not installed & {"pytest", "mlflow", "ruff", "mypy", "grpcio-tools", "moto"}


@pytest.fixture
def artifacts_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlgrid-image-artifacts-") as raw:
        path = Path(raw)
        path.chmod(0o777)  # the containers' user writes here
        yield path


def test_the_stack_runs_from_the_image_against_postgresql(
    container_engine: Any, mlgrid_image: str, fresh_postgres_url: str, artifacts_dir: Path
) -> None:
    client = container_engine.client()
    store = fresh_postgres_url.replace("postgres@", f"postgres:{quote(PASSWORD, safe='')}@", 1)
    env = {"MLGRID_BACKEND_STORE_URI": store}
    code, out = _run(client, mlgrid_image, ["db", "upgrade"], environment=env)
    assert code == 0, out
    assert "postgres:***@" in out and quote(PASSWORD, safe="") not in out and "img:pw" not in out

    ports = {name: _free_port() for name in ("gateway", "tracking", "artifacts", "registry",
                                              "projects")}  # fmt: skip
    gateway_target = f"127.0.0.1:{ports['gateway']}"
    root = "file:///srv/artifacts"
    volumes = {str(artifacts_dir): {"bind": "/srv/artifacts", "mode": "rw"}}
    started = []
    try:
        for name in ("tracking", "artifacts", "registry", "projects"):
            args = ["server", name, "--host", "127.0.0.1", "--port", str(ports[name]),
                    "--gateway-target", gateway_target]  # fmt: skip
            if name in ("tracking", "artifacts"):
                args += ["--default-artifact-root", root]
            started.append(client.containers.run(
                mlgrid_image, args, detach=True, network_mode="host", environment=env,
                volumes=volumes, name=f"mlgrid-img-{name}-{os.getpid()}",
            ))  # fmt: skip
        gateway = client.containers.run(
            mlgrid_image,
            ["server", "gateway", "--host", "127.0.0.1", "--port", str(ports["gateway"]),
             "--no-tunnel", "--no-rest",
             *(f"--backend=127.0.0.1:{ports[n]}" for n in ("tracking", "artifacts", "registry",
                                                            "projects"))],
            detach=True, network_mode="host", name=f"mlgrid-img-gateway-{os.getpid()}",
        )  # fmt: skip
        started.append(gateway)
        _wait_serving(gateway_target, started)

        client_sdk = MlflowClient(tracking_uri=f"grpc://{gateway_target}")
        experiment = client_sdk.create_experiment("from-the-image")
        run = client_sdk.create_run(experiment)
        client_sdk.log_param(run.info.run_id, "alpha", "0.5")
        client_sdk.log_metric(run.info.run_id, "loss", 0.25, step=1)
        local = artifacts_dir.parent / f"{artifacts_dir.name}-upload.txt"
        local.write_text("weights")
        try:
            client_sdk.log_artifact(run.info.run_id, str(local))
        finally:
            local.unlink()
        client_sdk.set_terminated(run.info.run_id)
        client_sdk.create_registered_model("image-model")

        fetched = client_sdk.get_run(run.info.run_id)
        assert fetched.data.params == {"alpha": "0.5"}
        assert fetched.data.metrics == {"loss": 0.25}
        assert fetched.info.status == "FINISHED"
        assert [f.path for f in client_sdk.list_artifacts(run.info.run_id)] == [local.name]
        stored = list(artifacts_dir.rglob(local.name))
        assert len(stored) == 1 and stored[0].read_text() == "weights"
        assert client_sdk.get_registered_model("image-model").name == "image-model"

        # SIGTERM stops each process cleanly (exit 0) and no log line holds the password.
        for container in started:
            container.stop(timeout=15)
            assert container.wait(timeout=30)["StatusCode"] == 0, container.logs()[-2000:]
            logs = container.logs().decode(errors="replace")
            assert "img:pw" not in logs and quote(PASSWORD, safe="") not in logs
    finally:
        for container in started:
            container.remove(force=True)


def _wait_serving(target: str, containers: list[Any], limit: float = 90.0) -> None:
    """Until the gateway says SERVING: every backend it was given has answered it."""
    deadline = time.monotonic() + limit
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {c.name}\n{c.logs()[-1500:].decode(errors='replace')}" for c in containers
                )
                pytest.fail(f"the stack from the image did not become ready:\n{logs}")
            time.sleep(0.5)


def test_make_push_publishes_the_image_where_the_chart_pulls_it(
    container_engine: Any, mlgrid_image: str
) -> None:
    import json
    import urllib.request

    podman, engine_env = container_engine.podman_cli()
    registry = f"{container_engine.registry}/ml"
    pushed = subprocess.run(
        ["make", "--no-print-directory", "push", f"ENGINE={' '.join(podman)}",
         f"IMAGE={mlgrid_image}", f"REGISTRY={registry}"],
        cwd=ROOT, env=engine_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stdout[-3000:] + pushed.stderr[-3000:]
    assert f"--set image.repository={registry}/mlgrid" in pushed.stdout
    assert f"{registry}/mlgrid@sha256:" in pushed.stdout  # the digest to pin
    url = f"http://{container_engine.registry}/v2/ml/mlgrid/tags/list"
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert json.load(answer)["tags"] == ["0.1.0"]
    # Without REGISTRY it says what it needs instead of pushing somewhere.
    refused = subprocess.run(["make", "--no-print-directory", "push"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode != 0 and "make push needs REGISTRY=" in refused.stdout
