"""MLflow 3's logged models through the Client, embedded and remote (through the gateway)."""

from __future__ import annotations

import pytest

from mlgrid import MlflowClient
from mlgrid.client import Client
from mlgrid.entities import (
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
)
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist


@pytest.fixture
def client(uri: str) -> Client:
    return MlflowClient(uri)


@pytest.fixture
def experiment_id(client: Client, unique_name: str) -> str:
    return client.create_experiment(unique_name)


def test_log_model_flow_as_mlflow_3_drives_it(client: Client, experiment_id: str) -> None:
    """create (PENDING) → link to the run → log metrics with the model id → finalize READY."""
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "alpha", 0.5)
    model = client.create_logged_model(
        experiment_id,
        name="clf",
        source_run_id=run_id,
        params={"alpha": 0.5},
        tags={"mlflow.source.name": "train.py"},
        model_type="sklearn",
    )
    assert isinstance(model, LoggedModel) and model.status == LoggedModelStatus.PENDING
    assert model.model_uri == f"models:/{model.model_id}"
    assert model.artifact_location.endswith(f"/models/{model.model_id}/artifacts")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    client.log_metric(run_id, "acc", 0.93, step=0, model_id=model.model_id, dataset_name="test")
    client.log_batch(
        run_id, metrics=[Metric("f1", 0.9, 5, 0, model_id=model.model_id, dataset_name="test")]
    )
    ready = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert ready.status == LoggedModelStatus.READY
    got = client.get_logged_model(model.model_id)
    assert got.params == {"alpha": "0.5"} and got.tags == {"mlflow.source.name": "train.py"}
    assert sorted((m.key, m.value, m.run_id, m.dataset_name) for m in got.metrics or []) == [
        ("acc", 0.93, run_id, "test"),
        ("f1", 0.9, run_id, "test"),
    ]
    run = client.get_run(run_id)
    assert run.outputs.model_outputs == [LoggedModelOutput(model.model_id, 0)]
    assert run.data.metrics == {"acc": 0.93, "f1": 0.9}


def test_many_linked_points_in_one_batch_keep_their_model(
    client: Client, experiment_id: str
) -> None:
    """Big batches travel as columns; points linked to a model must still carry its id."""
    run_id = client.create_run(experiment_id).info.run_id
    model_id = client.create_logged_model(experiment_id).model_id
    plain = [Metric("loss", i / 10, i, i) for i in range(50)]
    linked = [Metric("acc", i / 100, i, i, model_id=model_id) for i in range(30)]
    client.log_batch(run_id, metrics=plain + linked)
    assert len(client.get_metric_history(run_id, "loss")) == 50
    assert len(client.get_metric_history(run_id, "acc")) == 30
    assert len(client.get_logged_model(model_id).metrics or []) == 30


def test_search_tags_params_and_delete(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    ids = []
    for name, acc in (("low", 0.2), ("high", 0.8)):
        model_id = client.create_logged_model(experiment_id, name=name).model_id
        client.log_metric(run_id, "acc", acc, model_id=model_id)
        ids.append(model_id)
    found = client.search_logged_models([experiment_id], filter_string="metrics.acc > 0.5")
    assert [m.name for m in found] == ["high"] and found.token is None
    ordered = client.search_logged_models(
        [experiment_id], order_by=[{"field_name": "metrics.acc", "ascending": False}]
    )
    assert [m.name for m in ordered] == ["high", "low"]
    first = client.search_logged_models([experiment_id], max_results=1)
    assert len(first) == 1 and first.token
    rest = client.search_logged_models([experiment_id], max_results=1, page_token=first.token)
    assert {first[0].name, rest[0].name} == {"low", "high"}

    client.set_logged_model_tags(ids[0], {"stage": "dev"})
    client.log_model_params(ids[0], {"depth": 3})
    client.delete_logged_model_tag(ids[0], "stage")
    got = client.get_logged_model(ids[0])
    assert got.tags == {} and got.params == {"depth": "3"}
    client.delete_logged_model(ids[0])
    with pytest.raises(ResourceDoesNotExist):
        client.get_logged_model(ids[0])
    assert client.get_logged_model(ids[0], allow_deleted=True).name == "low"
    assert [m.name for m in client.search_logged_models([experiment_id])] == ["high"]


def test_model_inputs_of_a_run(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    model_id = client.create_logged_model(experiment_id).model_id
    client.log_inputs(run_id, models=[LoggedModelInput(model_id)])
    assert client.get_run(run_id).inputs.model_inputs == [LoggedModelInput(model_id)]


def test_bad_logged_model_calls_raise_typed_errors(client: Client, experiment_id: str) -> None:
    with pytest.raises(InvalidParameterValue, match="logged model name"):
        client.create_logged_model(experiment_id, name="a/b")
    with pytest.raises(InvalidParameterValue, match="experiment_ids"):
        client.search_logged_models("0")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="Unknown logged model status"):
        client.finalize_logged_model("m-" + "0" * 32, "DONE")
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        client.finalize_logged_model("m-" + "0" * 32, "READY")


def test_registering_a_logged_model_links_the_version_to_it(
    client: Client, experiment_id: str, unique_name: str
) -> None:
    """MLflow 3's register_model("models:/<model_id>"): the version's files are the logged
    model's, its run is the model's source run, and it remembers the model id."""
    run_id = client.create_run(experiment_id).info.run_id
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")  # a source must hold files
    model = client.create_logged_model(experiment_id, name="clf", source_run_id=run_id)
    client.create_registered_model(unique_name)
    version = client.create_model_version(unique_name, f"models:/{model.model_id}")
    assert version.model_id == model.model_id and version.run_id == run_id
    assert version.source == f"models:/{model.model_id}"
    assert client.get_model_version_download_uri(unique_name, version.version) == (
        model.artifact_location
    )
    assert client.get_model_version(unique_name, version.version).model_id == model.model_id
    # A version from the run's files can name the model it came from too.
    other = client.create_model_version(
        unique_name, f"runs:/{run_id}/model", model_id=model.model_id
    )
    assert other.model_id == model.model_id
    plain = client.create_model_version(unique_name, f"runs:/{run_id}/model")
    assert plain.model_id is None
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        client.create_model_version(unique_name, "models:/m-" + "5" * 32)
    with pytest.raises(InvalidParameterValue, match="differs"):
        client.create_model_version(
            unique_name, f"models:/{model.model_id}", model_id="m-" + "6" * 32
        )
