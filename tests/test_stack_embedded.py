"""Embedded mode (services in the caller's process on a private socket), the test stacks, and
``mlgrid db upgrade``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid_services import launcher
from mlgrid_services.common.app import SERVICE_NAMES, available_services
from mlgrid_services.stack import present_services


def create_and_get_experiment(target: str, name: str) -> trk.GetExperimentResponse:
    with grpc.insecure_channel(target) as channel:
        stub = trk_grpc.TrackingServiceStub(channel)
        created = stub.CreateExperiment(trk.CreateExperimentRequest(name=name), timeout=10)
        return stub.GetExperiment(
            trk.GetExperimentRequest(experiment_id=created.experiment_id), timeout=10
        )


def served_services(target: str) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        info = common_pb2_grpc.BackendInfoServiceStub(channel).GetBackendInfo(
            common_pb2.GetBackendInfoRequest(), timeout=5
        )
    return {s.service.rsplit(".", 1)[1] for s in info.services}


def test_embedded_stack_serves_every_service_on_a_private_socket(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLGRID_DEFAULT_ARTIFACT_ROOT", raising=False)
    store = f"sqlite:///{tmp_path / 'embedded.db'}"
    launcher.start_embedded(store).stop()  # first start pays for the imports
    started = time.perf_counter()
    stack = launcher.start_embedded(store)
    elapsed = time.perf_counter() - started
    try:
        print(f"embedded start after imports: {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0
        assert stack.target.startswith("unix:")
        socket_path = Path(stack.target.removeprefix("unix:"))
        assert socket_path.exists() and (socket_path.parent.stat().st_mode & 0o077) == 0
        assert (
            stack.config.default_artifact_root == (tmp_path / "mlgrid-artifacts").resolve().as_uri()
        )
        got = create_and_get_experiment(stack.target, "embedded")
        assert got.experiment.name == "embedded"
        assert got.experiment.artifact_location.startswith(stack.config.default_artifact_root)
        expected = {f"{n.capitalize()}Service" for n in available_services()}
        assert expected <= served_services(stack.target)
    finally:
        stack.stop()
    assert not socket_path.parent.exists()


def test_embedded_artifact_root_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    root = (tmp_path / "elsewhere").as_uri()
    monkeypatch.setenv("MLGRID_DEFAULT_ARTIFACT_ROOT", root)
    stack = launcher.start_embedded(f"sqlite:///{tmp_path / 'env.db'}")
    try:
        assert stack.config.default_artifact_root == root
        got = create_and_get_experiment(stack.target, "env-root")
        assert got.experiment.artifact_location.startswith(root)
    finally:
        stack.stop()


def test_embedded_stack_on_postgresql(postgres_url: str) -> None:
    stack = launcher.start_embedded(postgres_url)
    try:
        assert (
            create_and_get_experiment(stack.target, "embedded-pg").experiment.name == "embedded-pg"
        )
    finally:
        stack.stop()


def test_grpc_stack_fixture_routes_through_its_gateway(grpc_stack) -> None:
    assert grpc_stack.tracking_uri == f"grpc://{grpc_stack.target}"
    assert set(grpc_stack.services) == set(available_services())
    got = create_and_get_experiment(grpc_stack.target, "through-fixture")
    assert got.experiment.artifact_location.startswith(grpc_stack.artifact_root)
    with grpc.insecure_channel(grpc_stack.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_stack_pg_fixture_uses_postgresql(grpc_stack_pg, stack_postgres_url: str) -> None:
    assert grpc_stack_pg.backend_store_uri == stack_postgres_url
    assert stack_postgres_url.startswith("postgresql+psycopg://")
    assert (
        create_and_get_experiment(grpc_stack_pg.target, "through-pg").experiment.name
        == "through-pg"
    )


def test_up_finds_the_same_services_as_the_services_registry() -> None:
    assert present_services() == available_services()
    assert set(present_services()) <= set(SERVICE_NAMES)


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    command = [
        sys.executable,
        "-m",
        "mlgrid.cli.main",
        "db",
        "upgrade",
        "--backend-store-uri",
        f"sqlite:///{db}",
    ]
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "tracking schema" in result.stdout
    with sqlite3.connect(db) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert {"experiments", "runs"} <= tables


@pytest.mark.postgres
def test_db_upgrade_on_postgresql(fresh_postgres_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlgrid.cli.main",
            "db",
            "upgrade",
            "--backend-store-uri",
            fresh_postgres_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "tracking schema" in result.stdout
