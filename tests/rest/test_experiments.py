"""Experiments over REST with the real mlflow client: MLflow's behaviours and error codes."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException, RestException

from .helpers import call, error_of, unique


def test_create_get_and_tags(client: mlflow.MlflowClient) -> None:
    name = unique("exp")
    experiment_id = client.create_experiment(name, tags={"key1": "val1", "key2": "val2"})
    exp = client.get_experiment(experiment_id)
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.tags == {"key1": "val1", "key2": "val2"}
    # Runs of experiments under the served root upload through the proxy.
    assert exp.artifact_location == f"mlflow-artifacts:/{experiment_id}"
    assert exp.creation_time > 0 and exp.last_update_time >= exp.creation_time
    assert client.get_experiment_by_name(name).experiment_id == experiment_id


def test_default_experiment_is_served(client: mlflow.MlflowClient) -> None:
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location == "mlflow-artifacts:/0"


def test_delete_restore_and_view_types(client: mlflow.MlflowClient) -> None:
    name = unique("deleterious")
    experiment_id = client.create_experiment(name)
    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    active = {e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    deleted = {e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)}
    everything = {e.name for e in client.search_experiments(view_type=ViewType.ALL)}
    assert name not in active and name in deleted and name in everything
    assert "Default" in active
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_rename(client: mlflow.MlflowClient) -> None:
    experiment_id = client.create_experiment(unique("bad-name"))
    good = unique("good-name")
    client.rename_experiment(experiment_id, good)
    assert client.get_experiment(experiment_id).name == good


def test_set_and_delete_experiment_tag(client: mlflow.MlflowClient) -> None:
    experiment_id = client.create_experiment(unique("tags"))
    client.set_experiment_tag(experiment_id, "team", "a")
    client.set_experiment_tag(experiment_id, "team", "b")
    assert client.get_experiment(experiment_id).tags == {"team": "b"}
    client.delete_experiment_tag(experiment_id, "team")
    assert client.get_experiment(experiment_id).tags == {}


def test_search_pages_through_every_experiment(client: mlflow.MlflowClient) -> None:
    prefix = unique("paged")
    made = {client.create_experiment(f"{prefix}-{i}") for i in range(5)}
    seen: list[str] = []
    page = client.search_experiments(max_results=2, filter_string=f"name LIKE '{prefix}%'")
    while True:
        assert len(page) <= 2
        seen.extend(e.experiment_id for e in page)
        if not page.token:
            break
        page = client.search_experiments(
            max_results=2, filter_string=f"name LIKE '{prefix}%'", page_token=page.token
        )
    assert sorted(seen) == sorted(made)


def test_search_orders_and_filters_by_tag(client: mlflow.MlflowClient) -> None:
    prefix = unique("ordered")
    first = client.create_experiment(f"{prefix}-b", tags={"kind": "x"})
    client.create_experiment(f"{prefix}-a", tags={"kind": "y"})
    found = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%' AND tags.kind = 'x'", order_by=["name DESC"]
    )
    assert [e.experiment_id for e in found] == [first]
    both = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name"])
    assert [e.name for e in both] == [f"{prefix}-a", f"{prefix}-b"]


def test_unknown_experiment_is_resource_does_not_exist(client: mlflow.MlflowClient) -> None:
    with pytest.raises(RestException) as caught:
        client.get_experiment("987654321")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment_by_name(unique("missing")) is None


def test_duplicate_name_is_resource_already_exists(client: mlflow.MlflowClient) -> None:
    name = unique("dup")
    client.create_experiment(name)
    with pytest.raises(MlflowException) as caught:
        client.create_experiment(name)
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_create_validation_matches_mlflows_messages(rest_url: str) -> None:
    def bad(payload: dict[str, object], expected: str) -> None:
        response = call(rest_url, "POST", "/api/2.0/mlflow/experiments/create", payload)
        status, code, message = error_of(response)
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
        assert expected in message

    bad({"name": 123}, "Invalid value 123 for parameter 'name'")
    bad({}, "Missing value for required parameter 'name'")
    bad(
        {"name": unique("x"), "artifact_location": 9.0},
        "Invalid value 9.0 for parameter 'artifact_location'",
    )
    bad({"name": unique("x"), "tags": "5"}, "Invalid value \"5\" for parameter 'tags'")


def test_ajax_api_answers_like_api(rest_url: str, client: mlflow.MlflowClient) -> None:
    experiment_id = client.create_experiment(unique("ajax"))
    api = call(
        rest_url, "GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id}
    )
    ajax = call(
        rest_url,
        "GET",
        "/ajax-api/2.0/mlflow/experiments/get",
        params={"experiment_id": experiment_id},
    )
    assert api.status_code == ajax.status_code == 200
    assert api.json() == ajax.json()
    # The UI searches experiments with GET and query parameters.
    listed = call(
        rest_url, "GET", "/ajax-api/2.0/mlflow/experiments/search", params={"max_results": 1000}
    )
    assert experiment_id in {e["experiment_id"] for e in listed.json()["experiments"]}
