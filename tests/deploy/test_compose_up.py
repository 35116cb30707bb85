"""deploy/compose.yaml brought up on the real container engine and used as a user would (#15).

The compose runner is podman-compose (the dev extra) driving the run's Podman (the engine
fixture; ../shared/CONTAINERS.md). The compose file is used as written; a test override file
(what an operator's compose.override.yaml would be) only swaps the image names for local ones
and picks free host ports, keeping the file's bind address:

* mlgrid: the image `make image` builds (conftest.py), instead of building it again;
* postgres, minio, minio-init: stand-ins built from Debian's packages (tests/deploy/standins/),
  as nothing can be pulled from a public registry here.

What differs from Docker Compose, and what the test therefore does itself (docs/deploy.md shows
the same commands): Podman runs health checks from systemd timers, which this machine has not,
so the test runs `podman healthcheck run` until a container reports healthy. podman-compose
waits for `service_healthy` only on Podman 4.6 or newer (Debian 12 has 4.3), and it turns
depends_on into `--requires`, which makes Podman restart a finished one-shot (migrate,
minio-init) whenever a service that depends on it starts. So the stack comes up in compose's
own dependency order, one stage at a time with `--no-deps`, each stage seen healthy (or
finished successfully) before the next starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlgrid import MlflowClient

from .cli_args import ROOT
from .test_compose import NEEDED_SECRETS

#: Image builds happen in the fixtures' setup (minutes on a cold, busy machine).
pytestmark = pytest.mark.timeout(1200)
DEPLOY_FILES = ("compose.yaml", "gateway-routes.yaml", "compose-secrets.sh")
#: deploy/compose.yaml's depends_on order, one stage at a time (see the module doc).
STAGES = (("postgres", "minio"), ("migrate", "minio-init"),
          ("tracking", "artifacts", "registry", "projects"), ("gateway",))  # fmt: skip
ONE_SHOTS = ("migrate", "minio-init")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """One compose project on the engine: runs podman-compose and podman against it."""

    directory: Path
    project: str
    podman: list[str]
    env: dict[str, str]
    gateway_port: int
    tunnel_port: int

    def compose(self, *args: str, timeout: float = 600) -> str:
        wrapper = self.directory / "podman"
        done = subprocess.run(
            [sys.executable, "-m", "podman_compose", "--podman-path", str(wrapper),
             "--project-name", self.project,
             "--file", str(self.directory / "compose.yaml"),
             "--file", str(self.directory / "compose.test.yaml"), *args],
            cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"podman-compose {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{self.logs()}"
        )
        return done.stdout

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.podman, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check:
            assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr[-2000:]}"
        return done

    def containers(self) -> dict[str, dict[str, Any]]:
        """service name -> `podman inspect` of its container (running or exited)."""
        ids = self.run(
            "ps", "--all", "--quiet", "--filter", f"label=io.podman.compose.project={self.project}"
        ).stdout.split()
        if not ids:
            return {}
        inspected = json.loads(self.run("inspect", *ids).stdout)
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}

    def logs(self) -> str:
        parts = []
        for service, container in sorted(self.containers().items()):
            out = self.run("logs", "--tail", "30", container["Id"], check=False)
            state = container["State"]
            parts.append(
                f"--- {service} ({state['Status']}, exit {state['ExitCode']})\n"
                f"{(out.stdout + out.stderr)[-2500:]}"
            )
        return "\n".join(parts)

    def wait_healthy(self, services: list[str], limit: float = 120.0) -> None:
        """Runs each container's health check until it reports healthy: Podman runs them from
        systemd timers, which this machine has not."""
        deadline = time.monotonic() + limit
        pending = set(services)
        while pending:
            containers = self.containers()
            for service in sorted(pending):
                self.run("healthcheck", "run", containers[service]["Id"], check=False)
            containers = self.containers()
            pending = {
                s for s in pending if containers[s]["State"]["Health"]["Status"] != "healthy"
            }
            if not pending:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"not healthy within {limit:.0f} s: {sorted(pending)}\n{self.logs()}")
            time.sleep(1)

    def wait_finished(self, services: list[str], limit: float = 120.0) -> None:
        """Until each one-shot has exited, successfully (service_completed_successfully)."""
        deadline = time.monotonic() + limit
        while True:
            states = {s: self.containers()[s]["State"] for s in services}
            if all(state["Status"] == "exited" for state in states.values()):
                codes = {s: state["ExitCode"] for s, state in states.items()}
                assert codes == dict.fromkeys(services, 0), f"{codes}\n{self.logs()}"
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{services} did not finish within {limit:.0f} s:\n{self.logs()}")
            time.sleep(1)

    def up(self) -> None:
        """The stack in compose's dependency order, each stage ready before the next."""
        for stage in STAGES:
            self.compose("up", "--detach", "--no-deps", *stage)
            if set(stage) <= set(ONE_SHOTS):
                self.wait_finished(list(stage))
            elif stage == ("gateway",):
                self.wait_gateway_serving()
                self.wait_healthy(list(stage))
            else:
                self.wait_healthy(list(stage))

    def wait_gateway_serving(self, limit: float = 120.0) -> None:
        """Until the gateway, through its published port, says SERVING (it routes to every
        service)."""
        deadline = time.monotonic() + limit
        with grpc.insecure_channel(f"127.0.0.1:{self.gateway_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not become ready:\n{self.logs()}")
                time.sleep(0.5)


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME:-default} (podman-compose leaves !override values as written)."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1]) or m[2], value)


def _override(images: dict[str, str], host_ports: dict[int, int], env: dict[str, str]) -> str:
    """The test's override file: local images; the gateway's ports published on the address
    deploy/compose.yaml names, with free host ports (port -> host port) instead of its own."""
    lines = ["services:"]
    for service, image in images.items():
        lines += [f"  {service}:", f"    image: {image}"]
        if service == "gateway":
            lines.append("    ports: !override")
            compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
            for spec in compose["services"]["gateway"]["ports"]:
                address, _host, port = _interpolate(spec, env).rsplit(":", 2)
                lines.append(f'      - "{address}:{host_ports[int(port)]}:{port}"')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stack(
    container_engine: Any,
    mlgrid_image: str,
    standin_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """deploy/ copied to a scratch directory with fresh secrets and brought up, as the module
    doc says; taken down (containers, network, volumes) at the end, whatever happened."""
    directory = tmp_path_factory.mktemp("compose") / "deploy"
    directory.mkdir()
    for name in DEPLOY_FILES:
        shutil.copy2(ROOT / "deploy" / name, directory / name)
    subprocess.run(["sh", str(directory / "compose-secrets.sh")], check=True, capture_output=True)
    podman, env = container_engine.podman_cli()
    env.pop("MLGRID_BIND", None)  # the file's default: loopback
    # podman-compose runs `podman`; this one reaches the run's engine (its own storage).
    wrapper = directory / "podman"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(podman) + ' "$@"\n')
    wrapper.chmod(0o755)
    images = {
        "postgres": standin_images["postgres"],
        "minio": standin_images["s3"],
        "minio-init": standin_images["s3"],
        **dict.fromkeys(
            ("migrate", "tracking", "artifacts", "registry", "projects", "gateway"), mlgrid_image
        ),
    }
    result = Stack(directory, f"mlgrid-compose-{os.getpid()}", podman, env,
                   _free_port(), _free_port())  # fmt: skip
    host_ports = {50051: result.gateway_port, 50050: result.tunnel_port}
    (directory / "compose.test.yaml").write_text(_override(images, host_ports, env))
    try:
        started = time.monotonic()
        result.up()
        print(f"\ncompose up to gateway SERVING: {time.monotonic() - started:.0f} s (wall clock)")
        yield result
    finally:
        result.compose("down", "--volumes", "--timeout", "10")
        assert result.containers() == {}
        label = f"label=io.podman.compose.project={result.project}"
        assert result.run("volume", "ls", "--quiet", "--filter", label).stdout.split() == []


def test_compose_comes_up_and_logs_a_run(stack: Stack, tmp_path: Path) -> None:
    containers = stack.containers()
    assert set(containers) == set(NEEDED_SECRETS)
    for service in ONE_SHOTS:  # the bucket and the schema were made
        state = containers[service]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), stack.logs()
    long_running = sorted(set(containers) - set(ONE_SHOTS))
    assert {s: containers[s]["State"]["Status"] for s in long_running} == dict.fromkeys(
        long_running, "running"
    )
    stack.wait_healthy(long_running)  # every health check in the file passes
    # The data lives in the file's named volumes (taken down with the project at the end).
    label = f"label=io.podman.compose.project={stack.project}"
    volumes = stack.run("volume", "ls", "--format", "{{.Name}}", "--filter", label).stdout.split()
    assert sorted(volumes) == [
        f"{stack.project}_{name}" for name in ("minio-data", "postgres-data", "projects-data")
    ]

    # A run with params, metrics and an artifact, through the gateway's published port.
    client = MlflowClient(tracking_uri=f"grpc://127.0.0.1:{stack.gateway_port}")
    experiment = client.create_experiment("from-compose")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "alpha", "0.5")
    for step, loss in enumerate([0.5, 0.25]):
        client.log_metric(run.info.run_id, "loss", loss, step=step)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(4096))
    client.log_artifact(run.info.run_id, str(weights))
    client.set_terminated(run.info.run_id)

    fetched = client.get_run(run.info.run_id)
    assert fetched.data.params == {"alpha": "0.5"}
    assert fetched.data.metrics == {"loss": 0.25}
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
    assert fetched.info.status == "FINISHED"
    assert fetched.info.artifact_uri.startswith("s3://mlgrid/artifacts/")
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["weights.bin"]
    downloaded = client.download_artifacts(run.info.run_id, "weights.bin", str(tmp_path / "dl"))
    assert Path(downloaded).read_bytes() == weights.read_bytes()


def test_compose_publishes_loopback_only_and_hands_out_only_needed_secrets(stack: Stack) -> None:
    containers = stack.containers()

    # Only the gateway publishes ports, and only on 127.0.0.1.
    published = {
        service: {
            (binding["HostIp"], binding["HostPort"])
            for bindings in (c["HostConfig"].get("PortBindings") or {}).values()
            for binding in bindings or []
        }
        for service, c in containers.items()
    }
    gateway, tunnel = str(stack.gateway_port), str(stack.tunnel_port)
    assert published == {
        **{service: set() for service in containers},
        "gateway": {("127.0.0.1", gateway), ("127.0.0.1", tunnel)},
    }
    # ... which no other address of this machine answers on.
    for address in _other_ipv4_addresses():
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, stack.gateway_port)) != 0, address

    # Each container has exactly the secret files it needs, and no secret in its environment.
    # (The S3 access key is the user name "mlgrid", which also names the database user.)
    secret_values = [
        (stack.directory / "secrets" / name).read_text()
        for name in ("postgres-password", "store-uri", "s3-secret-key")
    ]
    for service, container in containers.items():
        mounted = {
            m["Destination"].removeprefix("/run/secrets/")
            for m in container["Mounts"]
            if m["Destination"].startswith("/run/secrets/")
        }
        assert mounted == NEEDED_SECRETS[service], service
        if container["State"]["Status"] == "running":  # what the container itself sees
            listed = stack.run("exec", container["Id"], "ls", "-A", "/run/secrets", check=False)
            seen = set(listed.stdout.split()) if listed.returncode == 0 else set()
            assert seen == NEEDED_SECRETS[service], (service, listed.stderr)
        environment = "\n".join(container["Config"]["Env"] or [])
        assert not [v for v in secret_values if v in environment], service


def _other_ipv4_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback."""
    return [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    ]
