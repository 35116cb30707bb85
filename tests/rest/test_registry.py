"""The model registry over REST with the real mlflow client (MLflow's test_model_registry.py
behaviours: CRUD, versions, stages, aliases, tags, search with paging, error codes)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from .helpers import call, error_of, unique


@pytest.fixture
def run_id(client: mlflow.MlflowClient) -> str:
    """A run with files under model/: a version's source must hold some."""
    run_id = client.create_run(client.create_experiment(unique("reg"))).info.run_id
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    return run_id


def test_create_get_update_delete_registered_model(client: mlflow.MlflowClient) -> None:
    name = unique("model")
    created = client.create_registered_model(name, tags={"team": "a"}, description="first")
    assert (created.name, created.description, created.tags) == (name, "first", {"team": "a"})
    client.update_registered_model(name, description="second")
    fetched = client.get_registered_model(name)
    assert fetched.description == "second"
    assert fetched.last_updated_timestamp >= fetched.creation_timestamp > 0
    client.delete_registered_model(name)
    with pytest.raises(MlflowException) as caught:
        client.get_registered_model(name)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_rename_registered_model(client: mlflow.MlflowClient) -> None:
    old, new = unique("old"), unique("new")
    client.create_registered_model(old)
    client.rename_registered_model(old, new)
    assert client.get_registered_model(new).name == new
    with pytest.raises(MlflowException):
        client.get_registered_model(old)


def test_duplicate_model_is_resource_already_exists(client: mlflow.MlflowClient) -> None:
    name = unique("dup")
    client.create_registered_model(name)
    with pytest.raises(MlflowException) as caught:
        client.create_registered_model(name)
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_registered_model_tags(client: mlflow.MlflowClient) -> None:
    name = unique("tagged")
    client.create_registered_model(name)
    client.set_registered_model_tag(name, "k", "v")
    assert client.get_registered_model(name).tags == {"k": "v"}
    client.delete_registered_model_tag(name, "k")
    assert client.get_registered_model(name).tags == {}


def test_versions_stages_and_latest(client: mlflow.MlflowClient, run_id: str) -> None:
    name = unique("staged")
    client.create_registered_model(name)
    v1 = client.create_model_version(
        name, f"runs:/{run_id}/model", run_id, tags={"a": "b"}, description="d"
    )
    v2 = client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    assert (v1.version, v2.version) == ("1", "2")
    assert (v1.status, v1.current_stage, v1.tags, v1.description) == (
        "READY",
        "None",
        {"a": "b"},
        "d",
    )
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["2"]
    assert sorted(v.version for v in client.get_registered_model(name).latest_versions) == [
        "1",
        "2",
    ]
    client.update_model_version(name, "2", description="new")
    assert client.get_model_version(name, "2").description == "new"
    client.delete_model_version(name, "1")
    with pytest.raises(MlflowException) as caught:
        client.get_model_version(name, "1")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_version_tags_aliases_and_download_uri(client: mlflow.MlflowClient, run_id: str) -> None:
    name = unique("aliased")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    client.set_model_version_tag(name, "1", "validated", "yes")
    assert client.get_model_version(name, "1").tags == {"validated": "yes"}
    client.delete_model_version_tag(name, "1", "validated")
    assert client.get_model_version(name, "1").tags == {}
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_registered_model(name).aliases == {"champion": "1"}
    assert client.get_model_version(name, "1").aliases == ["champion"]
    client.delete_registered_model_alias(name, "champion")
    with pytest.raises(MlflowException) as caught:
        client.get_model_version_by_alias(name, "champion")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    uri = client.get_model_version_download_uri(name, "1")
    assert (
        uri
        == f"mlflow-artifacts:/{client.get_run(run_id).info.experiment_id}/{run_id}/artifacts/model"
    )


def test_reserved_alias_is_refused(client: mlflow.MlflowClient, run_id: str) -> None:
    name = unique("reserved")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    with pytest.raises(MlflowException) as caught:
        client.set_registered_model_alias(name, "latest", "1")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_models_and_versions_with_pages(client: mlflow.MlflowClient, run_id: str) -> None:
    prefix = unique("searched")
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        client.create_registered_model(name)
    seen = []
    page = client.search_registered_models(
        f"name LIKE '{prefix}%'", max_results=2, order_by=["name ASC"]
    )
    while True:
        seen.extend(m.name for m in page)
        if not page.token:
            break
        page = client.search_registered_models(
            f"name LIKE '{prefix}%'", max_results=2, order_by=["name ASC"], page_token=page.token
        )
    assert seen == names
    for _ in range(3):
        client.create_model_version(names[0], f"runs:/{run_id}/model", run_id)
    versions = client.search_model_versions(
        f"name = '{names[0]}'", order_by=["version_number DESC"]
    )
    assert [v.version for v in versions] == ["3", "2", "1"]
    by_run = client.search_model_versions(f"run_id = '{run_id}'")
    assert {v.name for v in by_run} == {names[0]}


def test_registry_errors_have_mlflows_shape(rest_url: str) -> None:
    response = call(
        rest_url, "GET", "/api/2.0/mlflow/registered-models/get", params={"name": unique("nope")}
    )
    assert error_of(response)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    missing = call(rest_url, "POST", "/api/2.0/mlflow/registered-models/create", {})
    status, code, message = error_of(missing)
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "Missing value for required parameter 'name'" in message


def test_register_model_through_the_fluent_api(
    rest_url: str, client: mlflow.MlflowClient, run_id: str, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(rest_url)
    mlflow.set_registry_uri(rest_url)
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    client.log_artifact(run_id, str(tmp_path / "MLmodel"), "model")
    name = unique("registered")
    version = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert version.version == "1"
    stored = client.get_model_version(name, "1")
    assert stored.run_id == run_id
    # The source is the run's model directory, shown as the proxy's URI.
    assert stored.source == f"{client.get_run(run_id).info.artifact_uri}/model"
