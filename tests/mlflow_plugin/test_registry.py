"""MLflow's model registry through the plugin: the behaviours MLflow's own registry tests check
(models, versions, stages, tags, aliases, searches with paging, timestamps, error codes)."""

from __future__ import annotations

import time

import pytest
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

# Stages are deprecated in MLflow (aliases replace them) but still served: MLflow warns on use.
pytestmark = pytest.mark.filterwarnings("ignore:.*stage.*:FutureWarning")


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def source(client, experiment_id) -> tuple[str, str]:
    """A run and a ``runs:/`` source inside it."""
    run_id = client.create_run(experiment_id).info.run_id
    # A version's source must hold files (mlgrid refuses one registered from nothing).
    for directory in ("model", "another_model"):
        client.log_text(run_id, "flavors: {}\n", f"{directory}/MLmodel")
    return run_id, f"runs:/{run_id}/model"


def test_create_and_query_a_registered_model(client, unique):
    name = f"CreateRMTest-{unique}"
    start = now_ms()
    created = client.create_registered_model(name, {"key": "value", "numeric value": 12345})
    end = now_ms()
    assert isinstance(created, RegisteredModel)
    fetched = client.get_registered_model(name)
    assert fetched.tags == {"key": "value", "numeric value": "12345"}
    assert str(fetched.description or "") == ""
    assert fetched.latest_versions == []
    assert start <= fetched.creation_timestamp <= end
    assert start <= fetched.last_updated_timestamp <= end
    assert [m.name for m in client.search_registered_models(f"name = '{name}'")] == [name]


def test_search_registered_models_pages_through_every_match(client, unique):
    names = [f"RMsearch-{unique}-{i:03}" for i in range(12)]
    for name in names:
        client.create_registered_model(name)
    for max_results in (1, 5, 100):
        found, token = [], None
        while True:
            page = client.search_registered_models(
                f"name LIKE 'RMsearch-{unique}-%'", max_results=max_results, page_token=token
            )
            found.extend(m.name for m in page)
            token = page.token
            if not token:
                break
        assert found == names
    assert [m.name for m in client.search_registered_models(f"name ILIKE '%{unique}-%07'")] == [
        names[7]
    ]
    desc = client.search_registered_models(
        f"name LIKE 'RMsearch-{unique}-%'", order_by=["name DESC"], max_results=3
    )
    assert [m.name for m in desc] == names[::-1][:3]


def test_rename_update_and_delete_a_registered_model(client, unique):
    name, new_name = f"UpdateRM-{unique}", f"UpdateRM-{unique} 2"
    client.create_registered_model(name)
    client.rename_registered_model(name, new_name)
    with pytest.raises(MlflowException) as excinfo:
        client.get_registered_model(name)
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    before = now_ms()
    client.update_registered_model(new_name, description="This is a test")
    updated = client.get_registered_model(new_name)
    assert updated.description == "This is a test"
    assert updated.last_updated_timestamp >= before

    with pytest.raises(MlflowException) as excinfo:
        client.create_registered_model(new_name)
    assert excinfo.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as excinfo:
        client.rename_registered_model(new_name, "something else")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.create_registered_model(new_name)  # the name is free again
    assert client.get_registered_model(new_name).latest_versions == []


def test_registered_model_tags(client, unique):
    name = f"RMTags-{unique}"
    client.create_registered_model(name)
    client.set_registered_model_tag(name, "key", "value")
    client.set_registered_model_tag(name, "numeric value", 12345)
    client.set_registered_model_tag(name, "empty", "")
    client.delete_registered_model_tag(name, "key")
    assert client.get_registered_model(name).tags == {"numeric value": "12345", "empty": ""}


def test_create_and_query_model_versions(client, unique, source):
    run_id, uri = source
    name = f"CreateMV-{unique}"
    client.create_registered_model(name)
    mv1 = client.create_model_version(name, uri, run_id, tags={"key": "value", "n": 1})
    assert isinstance(mv1, ModelVersion)
    assert (mv1.name, mv1.version, mv1.status) == (name, "1", "READY")
    assert mv1.tags == {"key": "value", "n": "1"}
    assert mv1.source == uri
    assert mv1.run_id == run_id
    mv2 = client.create_model_version(name, f"runs:/{run_id}/another_model", run_id)
    assert mv2.version == "2"
    [model] = client.search_registered_models(f"name = '{name}'")
    assert [v.version for v in model.latest_versions] == ["2"]
    assert {v.version for v in client.search_model_versions(f"name = '{name}'")} == {"1", "2"}
    [by_source] = client.search_model_versions(f"name = '{name}' AND source_path = '{uri}'")
    assert by_source.version == "1"
    assert {v.version for v in client.search_model_versions(f"run_id = '{run_id}'")} == {"1", "2"}
    assert client.get_model_version_download_uri(name, "1").startswith("mlgrid-artifacts://")


def test_a_version_that_is_not_a_number_is_invalid_parameter_value(client, unique, source):
    name = f"GetMV-{unique}"
    client.create_registered_model(name)
    client.create_model_version(name, source[1], source[0])
    with pytest.raises(MlflowException) as excinfo:
        client.get_model_version(name, "something not correct")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as excinfo:
        client.get_model_version(name, "7")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_model_versions_pages_and_orders(client, unique, source):
    names = [f"MVsearch-{unique}-{i}" for i in range(4)]
    for name in names:
        client.create_registered_model(name)
        for _ in range(2):
            client.create_model_version(name, source[1], source[0])
    scoped = f"name LIKE 'MVsearch-{unique}-%'"
    expected = sorted(((n, v) for n in names for v in ("1", "2")), reverse=True)
    found, token = [], None
    while True:
        page = client.search_model_versions(
            scoped, max_results=3, order_by=["name DESC", "version_number DESC"], page_token=token
        )
        found.extend((v.name, v.version) for v in page)
        token = page.token
        if not token:
            break
    assert found == expected


def test_update_transition_and_latest_versions_per_stage(client, unique, source):
    name = f"Stages-{unique}"
    client.create_registered_model(name)
    for version, stage in [("1", "Archived"), ("2", "Production"), ("3", "Staging"), ("4", "None")]:
        created = client.create_model_version(name, source[1], source[0])
        assert created.version == version
        if stage != "None":
            client.transition_model_version_stage(name, version, stage)
        assert client.get_model_version(name, version).current_stage == stage

    def latest(stages):
        return {v.current_stage: v.version for v in client.get_latest_versions(name, stages)}

    assert latest(["None"]) == {"None": "4"}
    assert latest(["None", "Staging"]) == {"None": "4", "Staging": "3"}
    assert latest(None) == {"Archived": "1", "Production": "2", "Staging": "3", "None": "4"}

    client.transition_model_version_stage(name, "3", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, "2").current_stage == "Archived"
    client.update_model_version(name, "3", description="the best")
    assert client.get_model_version(name, "3").description == "the best"
    with pytest.raises(MlflowException) as excinfo:
        client.transition_model_version_stage(name, "3", "Nowhere")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"


def test_deleted_versions_are_gone_and_their_numbers_are_not_reused(client, unique, source):
    name = f"DeleteMV-{unique}"
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source[1], source[0])
    client.delete_model_version(name, "1")
    with pytest.raises(MlflowException) as excinfo:
        client.update_model_version(name, "1", description="gone")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_model_version(name, "3")
    assert client.create_model_version(name, source[1], source[0]).version == "4"
    assert {v.version for v in client.search_model_versions(f"name = '{name}'")} == {"2", "4"}


def test_model_version_tags(client, unique, source):
    name = f"MVTags-{unique}"
    client.create_registered_model(name)
    client.create_model_version(name, source[1], source[0])
    client.set_model_version_tag(name, "1", "key", "value")
    client.set_model_version_tag(name, "1", "numeric value", 12345)
    client.set_model_version_tag(name, "1", "empty", "")
    client.delete_model_version_tag(name, "1", "key")
    assert client.get_model_version(name, "1").tags == {"numeric value": "12345", "empty": ""}


def test_aliases_point_at_one_version(client, unique, source):
    name = f"Aliases-{unique}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source[1], source[0])
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "champion", "2")  # moves it
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    assert client.get_model_version(name, "2").aliases == ["champion"]
    assert client.get_model_version(name, "1").aliases == []
    assert client.get_model_version_by_alias(name, "champion") == client.get_model_version(
        name, "2"
    )
    with pytest.raises(MlflowException) as excinfo:
        client.set_registered_model_alias(name, "latest", "1")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_registered_model_alias(name, "champion")
    assert client.get_registered_model(name).aliases == {}
    with pytest.raises(MlflowException) as excinfo:
        client.get_model_version_by_alias(name, "champion")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_copy_model_version_keeps_description_run_and_tags(client, unique, source):
    name, copy_name = f"Copy-{unique}", f"Copy-{unique}-dst"
    client.create_registered_model(name)
    client.create_model_version(
        name, source[1], source[0], description="dummy", tags={"hello": "world"}
    )
    client.set_registered_model_alias(name, "test_alias", "1")
    copied = client.copy_model_version(f"models:/{name}@test_alias", copy_name)
    assert (copied.name, copied.version) == (copy_name, "1")
    fetched = client.get_model_version(copy_name, "1")
    assert fetched.source == f"models:/{name}/1"
    assert (fetched.description, fetched.run_id, fetched.tags) == (
        "dummy",
        source[0],
        {"hello": "world"},
    )
