"""Registering a model version from a source with no files is refused at once, naming the
source, instead of failing later at load ("artifact '' does not exist")."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue

READY = "READY"


@pytest.fixture(scope="module")
def client(grpc_stack) -> Client:  # type: ignore[no-untyped-def]
    return Client(grpc_stack.tracking_uri)


@pytest.fixture
def model(client: Client) -> str:
    name = f"srcs-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    return name


def _root(client: Client, run_id: str) -> Path:
    return Path(urlsplit(client.get_run(run_id).info.artifact_uri).path)


def test_runs_source_without_files_is_refused_naming_it(client: Client, model: str) -> None:
    run = client.create_run("0")
    source = f"runs:/{run.info.run_id}/model"
    with pytest.raises(InvalidParameterValue) as excinfo:
        client.create_model_version(model, source)
    assert f"source {source!r} has no files" in excinfo.value.message
    assert "log the model's files" in excinfo.value.message
    assert client.search_model_versions(f"name = '{model}'") == []


def test_empty_model_directory_is_refused(client: Client, model: str) -> None:
    run = client.create_run("0")
    (_root(client, run.info.run_id) / "model").mkdir(parents=True)
    with pytest.raises(InvalidParameterValue, match="has no files"):
        client.create_model_version(model, f"runs:/{run.info.run_id}/model")


def test_local_source_without_files_is_refused(client: Client, model: str) -> None:
    run = client.create_run("0")
    missing = _root(client, run.info.run_id) / "nothing-here"
    with pytest.raises(InvalidParameterValue, match="has no files"):
        client.create_model_version(model, str(missing), run_id=run.info.run_id)


def test_source_with_files_is_ready_with_mlflows_status(client: Client, model: str) -> None:
    run = client.create_run("0")
    model_dir = _root(client, run.info.run_id) / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    version = client.create_model_version(model, f"runs:/{run.info.run_id}/model")
    assert (version.status, version.status_message) == (READY, "")


def test_a_single_file_source_is_accepted(client: Client, model: str) -> None:
    run = client.create_run("0")
    root = _root(client, run.info.run_id)
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.pkl").write_bytes(b"weights")
    version = client.create_model_version(model, f"runs:/{run.info.run_id}/model.pkl")
    assert version.status == READY
