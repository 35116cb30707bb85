"""MLflow's tracking API through the plugin: the behaviours MLflow's own REST tracking tests
check (experiments, runs, params, metrics, tags, batches, searches, paging, error codes), driven
with the real ``mlflow`` package against a real mlgrid stack."""

from __future__ import annotations

import json
import math
import time

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.entities.metric import MetricWithRunId
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_USER


def error_code(excinfo: pytest.ExceptionInfo[MlflowException]) -> str:
    return excinfo.value.error_code


# -- experiments -------------------------------------------------------------------------------


def test_create_get_and_search_experiments_with_tags_and_view_types(client, unique):
    exp_id = client.create_experiment(f"My Experiment {unique}", tags={"k1": "v1", "k2": 2})
    exp = client.get_experiment(exp_id)
    assert exp.name == f"My Experiment {unique}"
    assert exp.tags == {"k1": "v1", "k2": "2"}
    assert exp.lifecycle_stage == "active"
    assert exp.artifact_location.startswith("mlgrid-artifacts://")
    mine = f"name = 'My Experiment {unique}'"
    assert [e.experiment_id for e in client.search_experiments(filter_string=mine)] == [exp_id]

    client.delete_experiment(exp_id)
    assert client.search_experiments(filter_string=mine) == []
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=mine)
    assert [e.experiment_id for e in deleted] == [exp_id]
    everything = client.search_experiments(view_type=ViewType.ALL, filter_string=mine)
    assert [e.lifecycle_stage for e in everything] == ["deleted"]


def test_search_experiments_filters_orders_and_pages(client, unique):
    for name, tags in [("a", {"key": "value"}), ("ab", {"key": "vaLue"}), ("Abc", None)]:
        client.create_experiment(f"{unique}-{name}", tags=tags)
        time.sleep(0.002)  # distinct creation times make the default order deterministic
    scoped = f"name LIKE '{unique}-%'"

    def names(**kwargs):
        found = client.search_experiments(filter_string=kwargs.pop("f", scoped), **kwargs)
        return [e.name.removeprefix(f"{unique}-") for e in found]

    assert names(f=f"attribute.name = '{unique}-a'") == ["a"]
    assert names(f=f"{scoped} AND tags.key = 'value'") == ["a"]
    assert names(f=f"{scoped} AND tags.key ILIKE '%alu%'") == ["ab", "a"]
    assert names(order_by=["name DESC"]) == ["ab", "a", "Abc"]
    assert names() == ["Abc", "ab", "a"]  # last_update_time DESC

    first = client.search_experiments(filter_string=scoped, max_results=2)
    assert [e.name.removeprefix(f"{unique}-") for e in first] == ["Abc", "ab"]
    assert first.token
    rest = client.search_experiments(filter_string=scoped, max_results=2, page_token=first.token)
    assert [e.name.removeprefix(f"{unique}-") for e in rest] == ["a"]
    assert rest.token is None


def test_experiment_names_are_unique_and_missing_ones_are_reported(client, unique):
    client.create_experiment(f"dup-{unique}")
    with pytest.raises(MlflowException) as excinfo:
        client.create_experiment(f"dup-{unique}")
    assert error_code(excinfo) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as excinfo:
        client.get_experiment("987654321")
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment_by_name(f"missing-{unique}") is None


def test_delete_restore_rename_experiment_and_its_tags(client, unique):
    exp_id = client.create_experiment(f"BadName-{unique}")
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    client.rename_experiment(exp_id, f"GoodName-{unique}")
    assert client.get_experiment_by_name(f"GoodName-{unique}").experiment_id == exp_id

    client.set_experiment_tag(exp_id, "dataset", "imagenet1K")
    client.set_experiment_tag(exp_id, "dataset", "birdbike")
    client.set_experiment_tag(exp_id, "multiline tag", "value2\nvalue2")
    client.set_experiment_tag(exp_id, "empty", "")
    assert client.get_experiment(exp_id).tags == {
        "dataset": "birdbike",
        "multiline tag": "value2\nvalue2",
        "empty": "",
    }
    client.delete_experiment_tag(exp_id, "dataset")
    assert "dataset" not in client.get_experiment(exp_id).tags


def test_fluent_set_experiment_creates_it_once(mlflow_uri, unique):
    created = mlflow.set_experiment(f"fluent-{unique}")
    again = mlflow.set_experiment(f"fluent-{unique}")
    assert created.experiment_id == again.experiment_id


# -- runs --------------------------------------------------------------------------------------


def test_create_run_with_every_argument(client, experiment_id):
    tags = {MLFLOW_USER: "username", "mlflow.source.name": "Hello", "my": "tag"}
    created = client.create_run(experiment_id, start_time=456, tags=tags, run_name="my name")
    fetched = client.get_run(created.info.run_id)
    for run in (created, fetched):
        assert run.info.experiment_id == experiment_id
        assert run.info.user_id == "username"
        assert run.info.start_time == 456
        assert run.info.run_name == "my name"
        assert run.info.status == "RUNNING"
        assert run.info.end_time is None
        assert tags.items() <= run.data.tags.items()
        assert run.info.artifact_uri.startswith(
            client.get_experiment(experiment_id).artifact_location
        )
    assert [r.info for r in client.search_runs([experiment_id])] == [fetched.info]


def test_params_metrics_and_tags_round_trip(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "metric", 123.456, timestamp=789, step=2)
    client.log_metric(run_id, "nan_metric", float("nan"))
    client.log_metric(run_id, "inf_metric", float("inf"))
    client.log_metric(run_id, "-inf_metric", -float("inf"))
    client.log_metric(run_id, "stepless-metric", 987.654, timestamp=321)
    client.log_param(run_id, "param", "value")
    client.log_param(run_id, "empty", "")
    client.set_tag(run_id, "taggity", "do-dah")
    client.set_tag(run_id, "empty_tag", "")

    data = client.get_run(run_id).data
    assert data.metrics["metric"] == 123.456
    assert math.isnan(data.metrics["nan_metric"])
    assert data.metrics["inf_metric"] >= 1.7976931348623157e308
    assert data.metrics["-inf_metric"] <= -1.7976931348623157e308
    assert data.params == {"param": "value", "empty": ""}
    assert {"taggity": "do-dah", "empty_tag": ""}.items() <= data.tags.items()
    [point] = client.get_metric_history(run_id, "metric")
    assert (point.key, point.value, point.timestamp, point.step) == ("metric", 123.456, 789, 2)
    [stepless] = client.get_metric_history(run_id, "stepless-metric")
    assert (stepless.timestamp, stepless.step) == (321, 0)
    assert client.get_metric_history(run_id, "never-logged") == []


def test_a_metric_logged_at_timestamp_zero_keeps_it_as_in_mlflow(client, sdk, experiment_id):
    """MlflowClient.log_metric fills in only a missing timestamp; 0 is a timestamp. The same
    through mlgrid's own client."""
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "through-mlflow", 1.5, timestamp=0, step=0)
    sdk.log_metric(run_id, "through-mlgrid", 2.5, timestamp=0)
    for key, value in (("through-mlflow", 1.5), ("through-mlgrid", 2.5)):
        [point] = client.get_metric_history(run_id, key)
        assert (point.value, point.timestamp, point.step) == (value, 0, 0)


def test_latest_metric_is_the_greatest_step_not_the_last_write(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "loss", 0.1, timestamp=10, step=5)
    client.log_metric(run_id, "loss", 0.9, timestamp=20, step=1)
    assert client.get_run(run_id).data.metrics["loss"] == 0.1
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.9, 0.1]


def test_params_are_write_once(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "lr", "0.1")  # the same value again is fine
    with pytest.raises(MlflowException) as excinfo:
        client.log_param(run_id, "lr", "0.2")
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run_id).data.params == {"lr": "0.1"}


def test_delete_tag_and_its_errors(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "taggity", "do-dah")
    client.delete_tag(run_id, "taggity")
    assert "taggity" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException) as excinfo:
        client.delete_tag(run_id, "fakeTag")
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as excinfo:
        client.delete_tag("0123456789abcdef0123456789abcdef", "taggity")
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"


def test_a_deleted_run_refuses_writes_until_restored(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as excinfo:
        client.set_tag(run_id, "k", "v")
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert client.search_runs([experiment_id]) == []
    assert len(client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)) == 1
    client.restore_run(run_id)
    client.set_tag(run_id, "k", "v")
    assert client.get_run(run_id).data.tags["k"] == "v"


def test_log_batch_writes_everything_at_once(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("metric", 123.456, 789, 3)],
        params=[Param("param", "value"), Param("empty", "")],
        tags=[RunTag("taggity", "do-dah")],
    )
    run = client.get_run(run_id)
    assert run.data.metrics["metric"] == 123.456
    assert run.data.params == {"param": "value", "empty": ""}
    assert run.data.tags["taggity"] == "do-dah"
    [point] = client.get_metric_history(run_id, "metric")
    assert (point.timestamp, point.step) == (789, 3)


def test_a_bad_key_in_a_batch_is_refused_and_nothing_is_written(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    store = client._tracking_client.store  # below MLflow's client-side checks: mlgrid's own
    with pytest.raises(MlflowException) as excinfo:
        store.log_batch(
            run_id,
            metrics=[Metric("fine", 1.0, 1, 0)],
            params=[Param("../escape", "x")],
            tags=[],
        )
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert "escape" in excinfo.value.message
    assert client.get_run(run_id).data.metrics == {}


def test_set_terminated_ends_the_run_with_its_status(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    before = int(time.time() * 1000)
    client.set_terminated(run_id, "FAILED")
    info = client.get_run(run_id).info
    assert info.status == "FAILED"
    assert before <= info.end_time <= int(time.time() * 1000)
    client.set_terminated(run_id, "FINISHED", end_time=1234)
    assert client.get_run(run_id).info.end_time == 1234


def test_update_run_name_keeps_the_status(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id, "FINISHED")
    client.update_run(run_id, name="name_abc")
    info = client.get_run(run_id).info
    assert (info.run_name, info.status) == ("name_abc", "FINISHED")
    assert client.get_run(run_id).data.tags["mlflow.runName"] == "name_abc"


def test_get_run_of_a_missing_run_is_resource_does_not_exist(client):
    with pytest.raises(MlflowException) as excinfo:
        client.get_run("0123456789abcdef0123456789abcdef")
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"


# -- the fluent API ----------------------------------------------------------------------------


def test_fluent_run_with_nested_child_and_context_tags(experiment_id):
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"a": 1, "b": "two"})
        mlflow.log_metrics({"x": 1.0, "y": 2.0}, step=3)
        mlflow.set_tags({"team": "ml"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("c", 5)
    parent_run = mlflow.get_run(parent.info.run_id)
    child_run = mlflow.get_run(child.info.run_id)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.params == {"a": "1", "b": "two"}
    assert parent_run.data.metrics == {"x": 1.0, "y": 2.0}
    assert parent_run.data.tags["team"] == "ml"
    assert parent_run.data.tags["mlflow.source.type"] == "LOCAL"
    assert child_run.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_a_failing_block_marks_the_run_failed(experiment_id):
    with pytest.raises(RuntimeError), mlflow.start_run() as run:
        raise RuntimeError("boom")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_asynchronous_logging_lands_after_flush(experiment_id):
    with mlflow.start_run() as run:
        for step in range(20):
            mlflow.log_metric("async", step, step=step, synchronous=False)
        mlflow.log_param("p", "v", synchronous=False)
        mlflow.flush_async_logging()
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "async")
    assert [m.step for m in history] == list(range(20))
    assert mlflow.get_run(run.info.run_id).data.params == {"p": "v"}


# -- search ------------------------------------------------------------------------------------


def test_search_runs_pages_through_every_run(client, experiment_id):
    runs = sorted(client.create_run(experiment_id, start_time=1).info.run_id for _ in range(10))
    page = client.search_runs([experiment_id], max_results=4)
    seen = [r.info.run_id for r in page]
    assert page.token
    while page.token:
        page = client.search_runs([experiment_id], max_results=4, page_token=page.token)
        seen.extend(r.info.run_id for r in page)
    assert seen == runs  # same start_time: ordered by run_id


def test_search_runs_filters_orders_and_accepts_mlgrids_or(client, experiment_id):
    for lr, acc in [("0.1", 0.5), ("0.2", 0.7), ("0.3", 0.9)]:
        run_id = client.create_run(experiment_id, run_name=f"lr-{lr}").info.run_id
        client.log_param(run_id, "lr", lr)
        client.log_metric(run_id, "acc", acc)

    def lrs(filter_string, order_by=None):
        found = client.search_runs([experiment_id], filter_string, order_by=order_by)
        return [r.data.params["lr"] for r in found]

    assert lrs("metrics.acc > 0.6", ["metrics.acc DESC"]) == ["0.3", "0.2"]
    assert lrs("params.lr = '0.1' AND metrics.acc < 1", None) == ["0.1"]
    assert lrs("params.lr = '0.1' OR metrics.acc >= 0.9", ["params.lr"]) == ["0.1", "0.3"]
    assert lrs("attributes.run_name LIKE 'lr-0.%'", ["metrics.acc ASC"]) == ["0.1", "0.2", "0.3"]
    frame = mlflow.search_runs([experiment_id], order_by=["metrics.acc"])
    assert list(frame["params.lr"]) == ["0.1", "0.2", "0.3"]


def test_a_malformed_filter_and_a_page_too_large_are_invalid_parameter_value(client, experiment_id):
    with pytest.raises(MlflowException) as excinfo:
        client.search_runs([experiment_id], "metrics.acc >>> 1")
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as excinfo:
        client.search_runs([experiment_id], max_results=123456789)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert "max_results" in excinfo.value.message


# -- metric histories the UI charts ------------------------------------------------------------


def test_metric_history_pages_and_bulk_interval_sampling(client, experiment_id):
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    for run_id, steps in zip(run_ids, (10, 20), strict=True):
        client.log_batch(run_id, metrics=[Metric("m", 10.0, 1, i) for i in range(steps)])
    store = client._tracking_client.store
    first = store.get_metric_history(run_ids[0], "m", max_results=4)
    assert [m.step for m in first] == [0, 1, 2, 3]
    second = store.get_metric_history(run_ids[0], "m", max_results=4, page_token=first.token)
    assert [m.step for m in second] == [4, 5, 6, 7]

    # The sampled steps keep each run's first and last step and at most ~max_results others.
    sampled = store.get_metric_history_bulk_interval(run_ids, "m", 5, None, None)
    for run_id, last in zip(run_ids, (9, 19), strict=True):
        steps = [m.step for m in sampled if m.run_id == run_id]
        assert steps == sorted(steps)
        assert steps[0] == 0 and steps[-1] == last
        assert 5 <= len(steps) <= 7
    assert all(isinstance(m, MetricWithRunId) for m in sampled)
    ranged = store.get_metric_history_bulk_interval(run_ids[:1], "m", 5, 0, 4)
    assert [(m.run_id, m.step, m.value) for m in ranged] == [
        (run_ids[0], s, 10.0) for s in range(5)
    ]


def test_record_logged_model_appends_to_the_runs_model_history(client, experiment_id):
    from mlflow.models import Model

    run_id = client.create_run(experiment_id).info.run_id
    for path in ("model/a", "model/b"):
        client._record_logged_model(run_id, Model(artifact_path=path, run_id=run_id))
    history = json.loads(client.get_run(run_id).data.tags["mlflow.log-model.history"])
    assert [entry["artifact_path"] for entry in history] == ["model/a", "model/b"]
    assert {entry["run_id"] for entry in history} == {run_id}
