"""MLflow 3's models through the plugin: a flavor's log_model / load_model (logged models with
their own artifact location), autolog, logged-model calls, and the registry's models:/ URIs."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LinearRegression, LogisticRegression

#: Explicit requirements and cloudpickle: MLflow then skips inferring requirements in a
#: subprocess and importing skops (together ~30 s here); what reaches mlgrid is the same.
FAST = {"pip_requirements": ["scikit-learn"], "serialization_format": "cloudpickle"}

X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = np.array([0, 0, 1, 1])


def test_sklearn_log_model_and_load_model(experiment_id):
    model = LogisticRegression().fit(X, Y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="clf", input_example=X[:2], **FAST)
    assert info.model_uri == f"models:/{info.model_id}"
    logged = mlflow.get_logged_model(info.model_id)
    assert logged.status == LoggedModelStatus.READY
    assert logged.source_run_id == run.info.run_id
    assert logged.artifact_location.startswith("mlgrid-artifacts://")
    assert [o.model_id for o in mlflow.get_run(run.info.run_id).outputs.model_outputs] == [
        info.model_id
    ]
    # Search answers the run's model outputs too (MLflow 3's run.outputs), as get_run does.
    [found] = mlflow.MlflowClient().search_runs([experiment_id], f"run_id = '{run.info.run_id}'")
    assert [(o.model_id, o.step) for o in found.outputs.model_outputs] == [(info.model_id, 0)]

    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert list(loaded.predict(X)) == list(model.predict(X))
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    assert list(pyfunc.predict(X)) == list(model.predict(X))
    files = {f.path for f in mlflow.MlflowClient().list_logged_model_artifacts(info.model_id)}
    assert "MLmodel" in files


def test_register_an_mlflow3_logged_model_and_load_it_by_name_and_version(
    client, experiment_id, unique
):
    model = LogisticRegression().fit(X, Y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="clf", **FAST)
    name = f"registered-{unique}"
    version = mlflow.register_model(f"models:/{info.model_id}", name)
    assert version.version == "1"
    assert version.model_id == info.model_id
    fetched = client.get_model_version(name, "1")
    assert (fetched.model_id, fetched.run_id) == (info.model_id, run.info.run_id)
    assert fetched.source == f"models:/{info.model_id}"
    # The registration is recorded on the logged model as against MLflow's server: the server
    # writes it (the version as a number), then MLflow's register_model appends it as text.
    logged = client.get_logged_model(info.model_id)
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [
        {"name": name, "version": 1},
        {"name": name, "version": "1"},
    ]

    loaded = mlflow.sklearn.load_model(f"models:/{name}/1")
    assert list(loaded.predict(X)) == list(model.predict(X))
    download = client.get_model_version_download_uri(name, "1")
    assert download.startswith("mlgrid-artifacts://") and info.model_id in download


def test_a_version_created_from_a_logged_model_is_listed_on_it(client, experiment_id, unique):
    # MlflowClient.create_model_version(model_id=...) leaves the tag to the server alone.
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="clf", **FAST)
    name = f"direct-{unique}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"models:/{info.model_id}", model_id=info.model_id)
    tag = client.get_logged_model(info.model_id).tags["mlflow.modelVersions"]
    assert json.loads(tag) == [{"name": name, "version": 1}, {"name": name, "version": 2}]


def test_autolog_records_params_metrics_and_tags(experiment_id):
    # log_models=False: the model itself goes the way of log_model, tested above.
    mlflow.sklearn.autolog(log_models=False, log_datasets=False)
    try:
        with mlflow.start_run() as run:
            LinearRegression().fit(X, Y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    data = mlflow.get_run(run.info.run_id).data
    assert data.params["fit_intercept"] == "True"
    assert 0.0 < data.metrics["training_score"] <= 1.0
    assert data.tags["estimator_name"] == "LinearRegression"
    assert data.tags["estimator_class"] == "sklearn.linear_model._base.LinearRegression"


def test_logged_model_tags_params_metrics_search_and_delete(client, experiment_id):
    model = mlflow.initialize_logged_model(name="hand-made", params={"depth": "3"})
    mlflow.set_logged_model_tags(model.model_id, {"team": "ml"})
    with mlflow.start_run():
        mlflow.log_metric("acc", 0.75, model_id=model.model_id)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)

    fetched = client.get_logged_model(model.model_id)
    assert fetched.name == "hand-made"
    assert fetched.params == {"depth": "3"}
    assert fetched.tags["team"] == "ml"
    assert [(m.key, m.value) for m in fetched.metrics] == [("acc", 0.75)]
    found = client.search_logged_models(
        [experiment_id], filter_string="name = 'hand-made' AND metrics.acc > 0.5"
    )
    assert [m.model_id for m in found] == [model.model_id]

    client.delete_logged_model_tag(model.model_id, "team")
    assert "team" not in client.get_logged_model(model.model_id).tags
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException) as excinfo:
        client.get_logged_model(model.model_id)
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
