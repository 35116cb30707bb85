"""Installed plugins served in-process: embedded mode, the built-in services, overrides, failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest
from fixtures.stack import Stack, start_stack

import mlgrid
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.artifacts.repository import ArtifactRepository, FileInfo
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import SchemeRegistry
from mlgrid_services.artifacts.domain import ArtifactsDomain
from mlgrid_services.artifacts.repositories import BUILTIN_REPOSITORIES
from mlgrid_services.artifacts.repositories.file import FileArtifactRepository
from mlgrid_services.artifacts.servicer import ArtifactsServicer
from mlgrid_services.common.server import ServedService, start_server


def _tables(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(query))


def test_embedded_file_plugin_tracking_uri_needs_no_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "x"
    uri = f"file-plugin://{store}"
    monkeypatch.setenv("MLGRID_TEST_PLUGIN_CONTEXT", "1")
    mlgrid.set_tracking_uri(uri)
    mlgrid.set_experiment("embedded-plugin")
    with mlgrid.start_run() as run:
        mlgrid.log_metric("acc", 0.9)
        (tmp_path / "notes.txt").write_text("hello")
        mlgrid.log_artifact(str(tmp_path / "notes.txt"))
    fetched = mlgrid.get_run(run.info.run_id)
    assert fetched.data.metrics == {"acc": 0.9}
    assert fetched.data.tags["test"] == "tag"
    # Stored by the plugin: its SQLite file under the URI's path, artifacts via file-plugin://.
    assert _tables(store / "mlgrid.db", "SELECT name FROM experiments WHERE name='embedded-plugin'")
    assert fetched.info.artifact_uri.startswith(f"file-plugin://{store}/artifacts/")
    artifact = Path(fetched.info.artifact_uri.removeprefix("file-plugin://")) / "notes.txt"
    assert artifact.read_text() == "hello"
    # The plugin's registry store serves the same URI.
    client = Client(uri)
    client.create_registered_model("plugin-model")
    assert client.get_registered_model("plugin-model").name == "plugin-model"
    assert _tables(store / "mlgrid.db", "SELECT name FROM registered_models") == [("plugin-model",)]


def _announced(stack: Stack) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for server in stack.servers.values():
        with grpc.insecure_channel(server.address) as channel:
            info = common_pb2_grpc.BackendInfoServiceStub(channel).GetBackendInfo(
                common_pb2.GetBackendInfoRequest(), timeout=10
            )
        for served in info.services:
            found[served.service.split(".")[2]] = list(served.schemes)
    return found


def test_builtin_services_announce_installed_plugin_schemes(grpc_stack: Stack) -> None:
    announced = _announced(grpc_stack)
    for service in ("tracking", "artifacts", "registry"):
        if service in announced:
            assert "file-plugin" in announced[service], (service, announced[service])
    if "projects" in announced:
        assert "dummy-backend" in announced["projects"]
    # ... so the gateway learnt them without any configuration.
    learnt = {(r.service, r.scheme) for r in grpc_stack.gateway.routes()}
    assert ("tracking", "file-plugin") in learnt
    assert ("artifacts", "file-plugin") in learnt


def test_gateway_stack_serves_a_plugin_store_in_process(
    grpc_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "remote-plugin"
    monkeypatch.setenv("MLGRID_STORE_URI", f"file-plugin://{store}")
    # The plugin store keeps artifacts under its own scheme: the deployment allows it.
    monkeypatch.setenv("MLGRID_ARTIFACTS_ALLOWED_ROOTS", f"file-plugin://{store}")
    client = Client(grpc_stack.tracking_uri)
    experiment_id = client.create_experiment("in-process-plugin")
    run = client.create_run(experiment_id)
    client.log_bytes_at(run.info.artifact_uri, b"abc", "data.bin")
    assert (
        Path(run.info.artifact_uri.removeprefix("file-plugin://")) / "data.bin"
    ).read_bytes() == (b"abc")
    assert _tables(
        store / "mlgrid.db", "SELECT name FROM experiments WHERE name='in-process-plugin'"
    )
    monkeypatch.delenv("MLGRID_STORE_URI")
    assert client.get_experiment_by_name("in-process-plugin") is None


def test_broken_plugin_is_reported_and_the_service_keeps_working(
    grpc_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(grpc_stack.tracking_uri)
    with pytest.raises(InvalidParameterValue) as raised:
        client.log_bytes_at("broken-plugin:///somewhere", b"x", "a.txt")
    message = str(raised.value)
    assert "broken-plugin" in message and "ImportError" in message
    assert "mlgrid_test_plugin.broken:BrokenRepository" in message
    monkeypatch.setenv("MLGRID_STORE_URI", "broken-plugin:///somewhere")
    with pytest.raises(InvalidParameterValue, match=r"broken-plugin.*ImportError"):
        client.create_experiment("never")
    monkeypatch.delenv("MLGRID_STORE_URI")
    # Everything else still works.
    root = f"{grpc_stack.artifact_root}/after-broken-{tmp_path.name}"
    client.log_bytes_at(root, b"fine", "ok.txt")
    assert client.read_artifact_at(root, "ok.txt") == b"fine"
    assert client.create_experiment(f"still-fine-{tmp_path.name}")


class RecordingFileRepository(FileArtifactRepository):
    """A plugin for the built-in ``file`` scheme: stores as usual and remembers what it wrote."""

    written: list[str] = []

    def write_file(self, path: str, chunks: Iterable[bytes]) -> FileInfo:
        RecordingFileRepository.written.append(path)
        return super().write_file(path, chunks)


def test_a_plugin_overrides_the_builtin_file_scheme(tmp_path: Path) -> None:
    repositories: SchemeRegistry[ArtifactRepository] = SchemeRegistry(
        "mlgrid.artifact_repository", "artifact repository", dict(BUILTIN_REPOSITORIES)
    )
    repositories.register("file", RecordingFileRepository)
    servicer = ArtifactsServicer(ArtifactsDomain(None, repositories))
    service = ServedService(
        "mlgrid.api.artifacts.v1.ArtifactsService",
        lambda server: artifacts_service_pb2_grpc.add_ArtifactsServiceServicer_to_server(
            servicer, server
        ),
        repositories.schemes(),
    )
    server = start_server([service])
    try:
        with start_stack(tmp_path / "stack", services=[]) as stack:
            assert stack.gateway.add_backend(server.address)
            client = Client(stack.tracking_uri)
            root = (tmp_path / "files").as_uri()
            client.log_bytes_at(root, b"via plugin", "model/weights.bin")
    finally:
        server.stop(grace=1.0)
    assert RecordingFileRepository.written == ["model/weights.bin"]
    assert (tmp_path / "files" / "model" / "weights.bin").read_bytes() == b"via plugin"


def test_dummy_backend_runs_finish_at_once(grpc_stack: Stack, tmp_path: Path) -> None:
    if "projects" not in grpc_stack.services:
        pytest.fail("the projects service is not available in this checkout")
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: dummy\nentry_points:\n  main:\n    command: 'python -c pass'\n"
    )
    mlgrid.set_tracking_uri(grpc_stack.tracking_uri)
    submitted = mlgrid.projects.run(
        str(project), backend="dummy-backend", experiment_name="dummy-runs", synchronous=False
    )
    assert submitted.get_status() == "FINISHED"
    assert submitted.wait() is True
