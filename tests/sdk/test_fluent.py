"""The fluent API, in-process, embedded and remote: MLflow's run semantics."""

from __future__ import annotations

import pytest

import mlgrid
from mlgrid import MlflowClient
from mlgrid.entities import Dataset, ViewType
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist


def test_start_run_context_manager_finishes_the_run(uri: str, unique_name: str) -> None:
    experiment = mlgrid.set_experiment(unique_name)
    with mlgrid.start_run(run_name="train") as run:
        assert mlgrid.active_run() is run
        mlgrid.log_param("lr", 0.01)
        mlgrid.log_params({"epochs": 3, "opt": "adam"})
        mlgrid.log_metric("loss", 0.5, step=1)
        mlgrid.log_metrics({"acc": 0.9, "f1": 0.8}, step=1)
        mlgrid.set_tag("team", "vision")
        mlgrid.set_tags({"a": 1, "b": 2})
        mlgrid.delete_tag("b")
    assert mlgrid.active_run() is None
    finished = mlgrid.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.info.end_time
    assert finished.info.experiment_id == experiment.experiment_id
    assert finished.info.run_name == "train"
    assert finished.data.params == {"lr": "0.01", "epochs": "3", "opt": "adam"}
    assert finished.data.metrics == {"loss": 0.5, "acc": 0.9, "f1": 0.8}
    assert finished.data.tags["team"] == "vision" and "b" not in finished.data.tags
    assert finished.data.tags["mlflow.runName"] == "train"
    assert mlgrid.last_active_run() == finished


def test_exception_inside_the_run_marks_it_failed(uri: str, unique_name: str) -> None:
    mlgrid.set_experiment(unique_name)
    with pytest.raises(ZeroDivisionError), mlgrid.start_run() as run:
        _ = 1 / 0
    assert mlgrid.get_run(run.info.run_id).info.status == "FAILED"


def test_nested_runs_tag_their_parent(uri: str, unique_name: str) -> None:
    mlgrid.set_experiment(unique_name)
    with mlgrid.start_run() as parent:
        with mlgrid.start_run(nested=True) as child:
            assert mlgrid.active_run() is child
        assert mlgrid.active_run() is parent
    child_run = mlgrid.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mlgrid.get_parent_run(child.info.run_id) == mlgrid.get_run(parent.info.run_id)


def test_second_start_run_without_nested_is_refused(uri: str) -> None:
    with (
        mlgrid.start_run() as run,
        pytest.raises(InvalidParameterValue, match=f"{run.info.run_id}.*nested=True"),
    ):
        mlgrid.start_run()


def test_explicit_parent_run_id(uri: str) -> None:
    parent = MlflowClient(uri).create_run("0")
    with mlgrid.start_run(parent_run_id=parent.info.run_id) as child:
        pass
    tags = mlgrid.get_run(child.info.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id


def test_explicit_tags_win_over_context_tags(uri: str) -> None:
    with mlgrid.start_run(tags={"mlflow.user": "someone-else"}, description="why") as run:
        pass
    finished = mlgrid.get_run(run.info.run_id)
    assert finished.data.tags["mlflow.user"] == "someone-else"
    assert finished.info.user_id == "someone-else"
    assert finished.data.tags["mlflow.note.content"] == "why"
    assert finished.data.tags["mlflow.source.type"] == "LOCAL"


def test_logging_without_a_run_starts_one(uri: str) -> None:
    mlgrid.log_metric("m", 1.0)
    run = mlgrid.active_run()
    assert run is not None
    mlgrid.end_run()
    assert mlgrid.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_run_id_from_environment_is_resumed(
    uri: str, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(unique_name)
    existing = client.create_run(experiment_id)
    client.set_terminated(existing.info.run_id, "FAILED")
    monkeypatch.setenv("MLFLOW_RUN_ID", existing.info.run_id)
    with mlgrid.start_run(tags={"resumed": "yes"}) as run:
        assert run.info.run_id == existing.info.run_id
        assert run.info.status == "RUNNING"
        mlgrid.log_metric("after", 1.0)
    resumed = client.get_run(existing.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed"] == "yes" and resumed.data.metrics == {"after": 1.0}
    # Consumed: the next run is a new one.
    with mlgrid.start_run() as fresh:
        assert fresh.info.run_id != existing.info.run_id


def test_experiment_from_environment_name_is_created(
    uri: str, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", unique_name)
    with mlgrid.start_run() as run:
        pass
    experiment = mlgrid.get_experiment_by_name(unique_name)
    assert experiment is not None and run.info.experiment_id == experiment.experiment_id


def test_experiment_id_from_environment(
    uri: str, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment_id = mlgrid.create_experiment(unique_name)
    monkeypatch.setenv("MLGRID_EXPERIMENT_ID", experiment_id)
    with mlgrid.start_run() as run:
        pass
    assert run.info.experiment_id == experiment_id
    monkeypatch.setenv("MLGRID_EXPERIMENT_ID", "987654321")
    with pytest.raises(ResourceDoesNotExist, match="MLGRID_EXPERIMENT_ID='987654321'"):
        mlgrid.start_run()


def test_set_experiment_refuses_a_deleted_experiment(uri: str, unique_name: str) -> None:
    experiment_id = mlgrid.create_experiment(unique_name)
    mlgrid.delete_experiment(experiment_id)
    with pytest.raises(InvalidParameterValue, match="deleted"):
        mlgrid.set_experiment(experiment_id=experiment_id)
    assert unique_name not in [e.name for e in mlgrid.search_experiments()]
    assert unique_name in [e.name for e in mlgrid.search_experiments(view_type=ViewType.ALL)]


def test_search_runs_as_pandas_and_list(uri: str, unique_name: str) -> None:
    mlgrid.set_experiment(unique_name)
    for lr in ("0.1", "0.01"):
        with mlgrid.start_run():
            mlgrid.log_param("lr", lr)
            mlgrid.log_metric("acc", 0.5 if lr == "0.1" else 0.8)
    frame = mlgrid.search_runs(order_by=["metrics.acc DESC"])
    assert list(frame.columns[:6]) == [
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
    ]
    assert list(frame["params.lr"]) == ["0.01", "0.1"]
    assert list(frame["metrics.acc"]) == [0.8, 0.5]
    assert set(frame["status"]) == {"FINISHED"}
    assert str(frame["start_time"].dtype).startswith("datetime64")
    runs = mlgrid.search_runs(filter_string="params.lr = '0.1'", output_format="list")
    assert [r.data.params["lr"] for r in runs] == ["0.1"]
    with pytest.raises(InvalidParameterValue, match="'csv'"):
        mlgrid.search_runs(output_format="csv")


def test_log_input_records_a_dataset(uri: str) -> None:
    with mlgrid.start_run() as run:
        mlgrid.log_input(Dataset("wine", "abc", "local", "{}"), context="eval")
    inputs = mlgrid.get_run(run.info.run_id).inputs.dataset_inputs
    assert inputs[0].dataset.name == "wine"
    assert {(t.key, t.value) for t in inputs[0].tags} == {("mlflow.data.context", "eval")}
