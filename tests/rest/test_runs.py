"""Runs, metrics, params and tags over REST with the real mlflow client."""

from __future__ import annotations

import json
import math

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_SOURCE_NAME, MLFLOW_USER

from .helpers import call, error_of, unique


@pytest.fixture
def experiment_id(client: mlflow.MlflowClient) -> str:
    return client.create_experiment(unique("runs"))


def test_create_run_with_every_argument(client: mlflow.MlflowClient, experiment_id: str) -> None:
    tags = {
        MLFLOW_USER: "someone",
        MLFLOW_SOURCE_NAME: "Hello",
        MLFLOW_PARENT_RUN_ID: "7",
        "my": "tag",
    }
    created = client.create_run(experiment_id, start_time=456, run_name="my name", tags=tags)
    fetched = client.get_run(created.info.run_id)
    for run in (created, fetched):
        assert run.info.run_id == created.info.run_id
        assert run.info.experiment_id == experiment_id
        assert run.info.start_time == 456
        assert run.info.run_name == "my name"
        assert run.info.status == "RUNNING"
        assert run.info.end_time is None
        assert (
            run.info.artifact_uri
            == f"mlflow-artifacts:/{experiment_id}/{run.info.run_id}/artifacts"
        )
        assert tags.items() <= run.data.tags.items()
    assert [r.info for r in client.search_runs([experiment_id])] == [fetched.info]


def test_create_run_defaults(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run = client.get_run(client.create_run(experiment_id).info.run_id)
    assert run.info.run_name  # generated, and mirrored into the tag
    assert run.data.tags["mlflow.runName"] == run.info.run_name


def test_log_metrics_params_tags(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, key="metric", value=123.456, timestamp=789, step=2)
    client.log_metric(run_id, key="nan_metric", value=float("nan"))
    client.log_metric(run_id, key="inf_metric", value=float("inf"))
    client.log_metric(run_id, key="-inf_metric", value=-float("inf"))
    client.log_metric(run_id, key="stepless-metric", value=987.654, timestamp=321)
    client.log_param(run_id, "param", "value")
    client.log_param(run_id, "empty", "")
    client.set_tag(run_id, "taggity", "do-dah")
    run = client.get_run(run_id)
    assert run.data.metrics["metric"] == 123.456
    assert math.isnan(run.data.metrics["nan_metric"])
    assert run.data.metrics["inf_metric"] >= 1.7976931348623157e308
    assert run.data.metrics["-inf_metric"] <= -1.7976931348623157e308
    assert run.data.params == {"param": "value", "empty": ""}
    assert run.data.tags["taggity"] == "do-dah"
    [point] = client.get_metric_history(run_id, "metric")
    assert (point.key, point.value, point.timestamp, point.step) == ("metric", 123.456, 789, 2)
    [stepless] = client.get_metric_history(run_id, "stepless-metric")
    assert (stepless.timestamp, stepless.step) == (321, 0)
    assert client.get_metric_history(run_id, "a_test_accuracy") == []


def test_param_is_write_once(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "lr", "0.1")  # same value again: fine
    with pytest.raises(MlflowException) as caught:
        client.log_param(run_id, "lr", "0.2")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run_id).data.params["lr"] == "0.1"


def test_log_batch_and_latest_metric(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[
            Metric("loss", 3.0, 10, 0),
            Metric("loss", 1.0, 20, 2),
            Metric("loss", 2.0, 30, 1),
        ],
        params=[Param("a", "1"), Param("b", "2")],
        tags=[RunTag("t", "v")],
    )
    run = client.get_run(run_id)
    assert run.data.metrics == {"loss": 1.0}  # the point with the greatest step wins
    assert run.data.params == {"a": "1", "b": "2"}
    assert run.data.tags["t"] == "v"
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.0)]


def test_log_batch_with_duplicate_params_writes_nothing(
    client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(MlflowException) as caught:
        client.log_batch(
            run_id, metrics=[Metric("m", 1.0, 1, 0)], params=[Param("a", "1"), Param("a", "2")]
        )
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    run = client.get_run(run_id)
    assert run.data.params == {} and run.data.metrics == {}


def test_update_delete_restore_run(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id, "FAILED", end_time=999)
    client.update_run(run_id, name="renamed")
    info = client.get_run(run_id).info
    assert (info.status, info.end_time, info.run_name) == ("FAILED", 999, "renamed")
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY) == []
    assert [
        r.info.run_id
        for r in client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    ] == [run_id]
    with pytest.raises(MlflowException) as caught:  # a deleted run refuses writes
        client.log_param(run_id, "late", "x")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"


def test_delete_tag(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "gone", "soon")
    client.delete_tag(run_id, "gone")
    assert "gone" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException) as caught:
        client.delete_tag(run_id, "gone")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_runs_filter_order_and_pages(
    client: mlflow.MlflowClient, experiment_id: str
) -> None:
    ids = []
    for i in range(5):
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "acc", i / 10)
        client.log_param(run_id, "lr", "0.01" if i % 2 else "0.1")
        ids.append(run_id)
    found = client.search_runs(
        [experiment_id], "metrics.acc > 0.15 and params.lr = '0.01'", order_by=["metrics.acc DESC"]
    )
    assert [r.info.run_id for r in found] == [ids[3]]
    seen = []
    page = client.search_runs([experiment_id], max_results=2, order_by=["metrics.acc ASC"])
    while True:
        seen.extend(r.info.run_id for r in page)
        if not page.token:
            break
        page = client.search_runs(
            [experiment_id], max_results=2, order_by=["metrics.acc ASC"], page_token=page.token
        )
    assert seen == ids


def test_fluent_api_with_nested_runs(rest_url: str, experiment_id: str) -> None:
    mlflow.set_tracking_uri(rest_url)
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        mlflow.log_params({"alpha": 0.5})
        mlflow.log_metrics({"rmse": 0.7}, step=1)
        with mlflow.start_run(nested=True) as child:
            mlflow.set_tag("stage", "inner")
    done = mlflow.get_run(child.info.run_id)
    assert done.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
    assert done.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert mlflow.get_run(parent.info.run_id).data.params == {"alpha": "0.5"}


def test_log_inputs_shows_the_dataset(client: mlflow.MlflowClient, experiment_id: str) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    run_id = client.create_run(experiment_id).info.run_id
    dataset = Dataset("train", "abc123", "local", '{"uri": "/data"}', '{"cols": []}')
    client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    [logged] = client.get_run(run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest, logged.dataset.schema) == (
        "train",
        "abc123",
        '{"cols": []}',
    )
    assert [(t.key, t.value) for t in logged.tags] == [("mlflow.data.context", "train")]


def test_search_datasets_lists_what_the_runs_used_for_the_ui(
    rest_url: str, client: mlflow.MlflowClient, experiment_id: str
) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    train = Dataset("train", "abc123", "local", '{"uri": "/data/train"}')
    extra = Dataset("extra", "def456", "local", '{"uri": "/data/extra"}')
    for _ in range(2):  # two runs on the same dataset: listed once
        run_id = client.create_run(experiment_id).info.run_id
        client.log_inputs(run_id, [DatasetInput(train, [InputTag("mlflow.data.context", "train")])])
    client.log_inputs(run_id, [DatasetInput(extra, [])])
    answer = call(
        rest_url,
        "POST",
        "/ajax-api/2.0/mlflow/experiments/search-datasets",
        {"experiment_ids": [experiment_id]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "dataset_summaries": [
            # No context tag: no "context" field, as MLflow's server writes it.
            {"experiment_id": experiment_id, "name": "extra", "digest": "def456"},
            {
                "experiment_id": experiment_id,
                "name": "train",
                "digest": "abc123",
                "context": "train",
            },
        ]
    }


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([], "SearchDatasets request must specify at least one experiment_id."),
        (
            [str(i) for i in range(21)],
            "SearchDatasets request cannot specify more than 20 experiment_ids. "
            "Received 21 experiment_ids.",
        ),
    ],
)
def test_search_datasets_needs_one_to_twenty_experiments(
    rest_url: str, ids: list[str], message: str
) -> None:
    answer = call(
        rest_url,
        "POST",
        "/ajax-api/2.0/mlflow/experiments/search-datasets",
        {"experiment_ids": ids},
    )
    assert error_of(answer) == (400, "INVALID_PARAMETER_VALUE", message)


def test_metric_history_pages_and_bulk_interval(
    rest_url: str, client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("m", float(s), 100 + s, s) for s in range(10)])
    first = call(
        rest_url,
        "GET",
        "/api/2.0/mlflow/metrics/get-history",
        params={"run_id": run_id, "metric_key": "m", "max_results": 4},
    )
    body = first.json()
    assert [p["step"] for p in body["metrics"]] == [0, 1, 2, 3] and body["next_page_token"]
    second = call(
        rest_url,
        "GET",
        "/api/2.0/mlflow/metrics/get-history",
        params={
            "run_id": run_id,
            "metric_key": "m",
            "max_results": 4,
            "page_token": body["next_page_token"],
        },
    )
    assert [p["step"] for p in second.json()["metrics"]] == [4, 5, 6, 7]
    bulk = call(
        rest_url,
        "GET",
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={
            "run_ids": [run_id],
            "metric_key": "m",
            "start_step": 2,
            "end_step": 5,
            "max_results": 100,
        },
    )
    points = bulk.json()["metrics"]
    assert [(p["run_id"], p["step"]) for p in points] == [(run_id, s) for s in range(2, 6)]


def test_log_model_records_the_history_tag(
    rest_url: str, client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    model = {"artifact_path": "model", "flavors": {"python_function": {}}, "run_id": run_id}
    for _ in range(2):
        ok = call(
            rest_url,
            "POST",
            "/api/2.0/mlflow/runs/log-model",
            {"run_id": run_id, "model_json": json.dumps(model)},
        )
        assert ok.status_code == 200, ok.text
    history = json.loads(client.get_run(run_id).data.tags["mlflow.log-model.history"])
    assert history == [model, model]


def test_unknown_run_is_404(rest_url: str) -> None:
    response = call(rest_url, "GET", "/api/2.0/mlflow/runs/get", params={"run_id": "f" * 32})
    status, code, _ = error_of(response)
    assert (status, code) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_log_metric_validation_matches_mlflows_messages(
    rest_url: str, client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id

    def bad(payload: dict[str, object], expected: str) -> None:
        status, code, message = error_of(
            call(rest_url, "POST", "/api/2.0/mlflow/runs/log-metric", payload)
        )
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
        assert expected in message

    base = {"run_id": run_id, "key": "metric", "value": 41, "timestamp": 59, "step": 26}
    bad({**base, "run_id": 31}, "Invalid value 31 for parameter 'run_id' supplied")
    bad({**base, "key": 31}, "Invalid value 31 for parameter 'key' supplied")
    bad({**base, "step": "foo"}, "Invalid value \"foo\" for parameter 'step' supplied")
    bad({**base, "timestamp": "foo"}, "Invalid value \"foo\" for parameter 'timestamp' supplied")
    bad({**base, "run_id": None}, "Missing value for required parameter 'run_id'")
    bad({k: v for k, v in base.items() if k != "key"}, "Missing value for required parameter 'key'")
    assert client.get_run(run_id).data.metrics == {}  # nothing was written
