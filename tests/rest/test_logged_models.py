"""MLflow 3's logged models over REST with the real mlflow client, up to a flavor's log_model
and load_model through the artifacts proxy."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from .helpers import call, unique


@pytest.fixture
def experiment_id(client: mlflow.MlflowClient) -> str:
    return client.create_experiment(unique("logged"))


def test_logged_model_lifecycle(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(
        experiment_id,
        name="clf",
        source_run_id=run_id,
        tags={"team": "a"},
        params={"alpha": "0.1"},
        model_type="Classifier",
    )
    assert model.model_id.startswith("m-")
    assert model.status == LoggedModelStatus.PENDING
    assert (
        model.artifact_location
        == f"mlflow-artifacts:/{experiment_id}/models/{model.model_id}/artifacts"
    )
    assert (model.name, model.source_run_id, model.model_type) == ("clf", run_id, "Classifier")
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.set_logged_model_tags(model.model_id, {"stage": "dev"})
    client.log_model_params(model.model_id, {"beta": "2"})
    fetched = client.get_logged_model(model.model_id)
    assert fetched.status == LoggedModelStatus.READY
    assert fetched.tags == {"team": "a", "stage": "dev"}
    assert fetched.params == {"alpha": "0.1", "beta": "2"}
    client.delete_logged_model_tag(model.model_id, "team")
    assert client.get_logged_model(model.model_id).tags == {"stage": "dev"}
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException) as caught:
        client.get_logged_model(model.model_id)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_metrics_link_to_the_model_and_search_uses_them(
    client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    good = client.create_logged_model(experiment_id, name="good", source_run_id=run_id)
    bad = client.create_logged_model(experiment_id, name="bad", source_run_id=run_id)
    client.log_metric(run_id, "acc", 0.9, model_id=good.model_id)
    client.log_metric(run_id, "acc", 0.4, model_id=bad.model_id)
    [metric] = client.get_logged_model(good.model_id).metrics
    assert (metric.key, metric.value, metric.run_id) == ("acc", 0.9, run_id)
    found = client.search_logged_models([experiment_id], filter_string="metrics.acc > 0.5")
    assert [m.model_id for m in found] == [good.model_id]
    ordered = client.search_logged_models(
        [experiment_id], order_by=[{"field_name": "metrics.acc", "ascending": False}]
    )
    assert [m.name for m in ordered] == ["good", "bad"]
    page = client.search_logged_models([experiment_id], max_results=1)
    assert len(page) == 1 and page.token
    rest = client.search_logged_models([experiment_id], max_results=1, page_token=page.token)
    assert {page[0].model_id, rest[0].model_id} == {good.model_id, bad.model_id}


def test_a_flavor_logs_and_loads_a_model_through_the_proxy(
    rest_url: str, experiment_id: str
) -> None:
    class AddN(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return [x + 5 for x in model_input]

    mlflow.set_tracking_uri(rest_url)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="adder", python_model=AddN())
    model = mlflow.MlflowClient(rest_url).get_logged_model(info.model_id)
    assert model.status == LoggedModelStatus.READY
    assert model.source_run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    assert list(loaded.predict([1, 2])) == [6, 7]
    listed = call(
        rest_url, "GET", f"/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories"
    )
    assert "MLmodel" in {f["path"] for f in listed.json()["files"]}
    outputs = mlflow.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]
    searched = call(
        rest_url, "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]}
    ).json()["runs"]
    assert [r["outputs"]["model_outputs"] for r in searched] == [
        [{"model_id": info.model_id, "step": 0}]
    ]


def test_a_registered_logged_model_keeps_its_model_id_and_loads_by_version(
    rest_url: str, experiment_id: str
) -> None:
    class AddN(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return [x + 3 for x in model_input]

    mlflow.set_tracking_uri(rest_url)
    mlflow.set_registry_uri(rest_url)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="adder", python_model=AddN())
    name = unique("registered-logged-model")
    version = mlflow.register_model(f"models:/{info.model_id}", name)
    assert version.version == "1"
    answer = call(
        rest_url,
        "GET",
        "/api/2.0/mlflow/model-versions/get",
        params={"name": name, "version": "1"},
    )
    body = answer.json()["model_version"]
    assert (body["model_id"], body["run_id"]) == (info.model_id, run.info.run_id)
    assert body["source"] == f"models:/{info.model_id}"
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert list(loaded.predict([1, 2])) == [4, 5]


def test_unknown_logged_model_is_404(rest_url: str) -> None:
    response = call(
        rest_url, "GET", "/api/2.0/mlflow/logged-models/m-00000000000000000000000000000000"
    )
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
