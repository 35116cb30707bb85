"""Model version sources: nothing outside the named run's artifact root gets registered.

Runs come from the real tracking service of the stack; the registry reaches it through the
gateway, exactly as in a deployment.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist


@pytest.fixture(scope="module")
def client(grpc_stack) -> Client:  # type: ignore[no-untyped-def]
    return Client(grpc_stack.tracking_uri)


@pytest.fixture(scope="module")
def run(client: Client):  # type: ignore[no-untyped-def]
    """A run with a model directory and a symlink that leads out of its artifact root."""
    created = client.create_run("0")
    root = Path(urlsplit(created.info.artifact_uri).path)
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "MLmodel").write_text("flavors: {}\n")
    os.symlink("/etc", root / "escape")
    return created


@pytest.fixture
def model(client: Client) -> str:
    name = f"src-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    return name


def _root(run) -> str:  # type: ignore[no-untyped-def]
    return urlsplit(run.info.artifact_uri).path


HOSTILE = [
    # (source template, pass the run's id?)   {root} = the run's artifact root on disk
    ("file:///etc/", False),
    ("file:///etc/", True),
    ("/etc", False),
    ("/etc", True),
    ("//proc/self/root", True),
    ("../../etc/passwd", True),
    ("model/../../../../etc", True),
    ("{root}/../../../etc", True),
    ("{root}/%2e%2e/%2e%2e/%2e%2e/etc", True),
    ("{root}/%252e%252e/%252e%252e/etc", True),
    ("file://{root}/..%2f..%2f..%2fetc", True),
    ("{root}/escape", True),
    ("{root}/escape/passwd", True),
    ("{root}/model", False),
    ("runs:/{run_id}/../../etc", False),
    ("runs:/{run_id}/%2e%2e/%2e%2e/etc", False),
    ("runs:/{run_id}/%252E%252E/x", False),
    ("runs:/{run_id}//etc", False),
    ("runs://{run_id}/model", False),
    ("s3://bucket/models/../../secrets", False),
    ("s3://bucket/models/%2E%2E/secrets", False),
    ("mlflow-artifacts:/a/%25252e%25252e/b", False),
    ("models:/other@champion", False),
    ("C:/Windows/system32", True),
    ("", False),
]


@pytest.mark.parametrize(("template", "with_run_id"), HOSTILE)
def test_hostile_sources_are_invalid_argument(
    client: Client,
    run,
    model: str,
    template: str,
    with_run_id: bool,  # type: ignore[no-untyped-def]
) -> None:
    source = template.format(root=_root(run), run_id=run.info.run_id)
    with pytest.raises(InvalidParameterValue, match="source"):
        client.create_model_version(model, source, run_id=run.info.run_id if with_run_id else None)
    assert client.search_model_versions(f"name = '{model}'") == []


def test_a_local_path_outside_this_run_but_inside_another_is_refused(
    client: Client,
    run,
    model: str,  # type: ignore[no-untyped-def]
) -> None:
    other = client.create_run("0")
    with pytest.raises(InvalidParameterValue, match="outside the artifact root"):
        client.create_model_version(model, f"{_root(run)}/model", run_id=other.info.run_id)


@pytest.mark.parametrize("template", ["{root}/model", "file://{root}/model", "{root}"])
def test_local_sources_inside_the_runs_root_are_accepted(
    client: Client,
    run,
    model: str,
    template: str,  # type: ignore[no-untyped-def]
) -> None:
    source = template.format(root=_root(run))
    version = client.create_model_version(model, source, run_id=run.info.run_id)
    assert (version.source, version.run_id) == (source, run.info.run_id)
    assert client.get_model_version_download_uri(model, version.version) == source


def test_runs_source_resolves_to_the_runs_artifact_location(
    client: Client,
    run,
    model: str,  # type: ignore[no-untyped-def]
) -> None:
    version = client.create_model_version(model, f"runs:/{run.info.run_id}/model")
    assert version.run_id == run.info.run_id
    download = client.get_model_version_download_uri(model, version.version)
    assert download == f"{run.info.artifact_uri}/model"


def test_runs_source_of_a_missing_run_is_not_found(client: Client, model: str) -> None:
    with pytest.raises(ResourceDoesNotExist):
        client.create_model_version(model, f"runs:/{uuid.uuid4().hex}/model")


def test_run_id_that_contradicts_the_runs_source_is_refused(
    client: Client,
    run,
    model: str,  # type: ignore[no-untyped-def]
) -> None:
    other = client.create_run("0")
    with pytest.raises(InvalidParameterValue, match="differs"):
        client.create_model_version(
            model, f"runs:/{run.info.run_id}/model", run_id=other.info.run_id
        )


def test_remote_and_models_sources_are_accepted(client: Client, model: str) -> None:
    first = client.create_model_version(model, "s3://bucket/models/fraud/1")
    assert (
        client.get_model_version_download_uri(model, first.version) == "s3://bucket/models/fraud/1"
    )
    copy = client.create_model_version(model, f"models:/{model}/{first.version}")
    assert (
        client.get_model_version_download_uri(model, copy.version) == "s3://bucket/models/fraud/1"
    )
