"""The Client: MLflow's method names, domain objects out, typed exceptions in.

Every test runs embedded (SQLite served in-process) and remote (through the gateway).
"""

from __future__ import annotations

import math

import pytest

from mlgrid import MlflowClient, limits
from mlgrid.client import Client
from mlgrid.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    Metric,
    Param,
    Run,
    RunTag,
    ViewType,
)
from mlgrid.exceptions import (
    InvalidParameterValue,
    MlflowException,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from mlgrid.tracking_uri import get_tracking_transport


@pytest.fixture
def client(uri: str) -> Client:
    return MlflowClient(uri)


@pytest.fixture
def experiment_id(client: Client, unique_name: str) -> str:
    return client.create_experiment(unique_name)


def test_experiment_lifecycle(client: Client, unique_name: str) -> None:
    experiment_id = client.create_experiment(unique_name, tags={"team": "vision"})
    experiment = client.get_experiment(experiment_id)
    assert isinstance(experiment, Experiment)
    assert (experiment.name, experiment.lifecycle_stage) == (unique_name, "active")
    assert experiment.tags["team"] == "vision"
    assert client.get_experiment_by_name(unique_name) == experiment

    client.rename_experiment(experiment_id, unique_name + "-renamed")
    client.set_experiment_tag(experiment_id, "stage", "dev")
    client.delete_experiment_tag(experiment_id, "team")
    renamed = client.get_experiment(experiment_id)
    assert renamed.name == unique_name + "-renamed"
    assert renamed.tags == {"stage": "dev"}

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert experiment_id in [e.experiment_id for e in deleted]
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_missing_experiment_by_name_is_none(client: Client) -> None:
    assert client.get_experiment_by_name("no-such-experiment-anywhere") is None


def test_typed_exceptions_come_back_from_the_server(client: Client, unique_name: str) -> None:
    client.create_experiment(unique_name)
    with pytest.raises(ResourceAlreadyExists, match=unique_name):
        client.create_experiment(unique_name)
    with pytest.raises(ResourceDoesNotExist) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # MLflow scripts catch MlflowException: every typed error is one.
    assert isinstance(missing.value, MlflowException)


def test_params_are_write_once(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    assert client.log_param(run_id, "lr", 0.1) == 0.1
    client.log_param(run_id, "lr", 0.1)  # same value again: a no-op
    with pytest.raises(InvalidParameterValue, match="lr"):
        client.log_param(run_id, "lr", 0.2)
    assert client.get_run(run_id).data.params == {"lr": "0.1"}


def test_values_over_the_servers_limits_arrive_truncated(
    client: Client, experiment_id: str
) -> None:
    # The SDK truncates with the same limits the service validates against (mlgrid.limits):
    # a value that long is stored whole, a longer one arrives cut to it with a warning.
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "whole", "p" * limits.MAX_PARAM_VALUE_LENGTH)
    with pytest.warns(UserWarning, match="truncated to 6000"):
        client.log_param(run_id, "cut", "p" * (limits.MAX_PARAM_VALUE_LENGTH + 1))
    with pytest.warns(UserWarning, match="truncated to 8000"):
        client.set_tag(run_id, "note", "t" * (limits.MAX_RUN_TAG_VALUE_LENGTH + 5))
    data = client.get_run(run_id).data
    assert len(data.params["whole"]) == len(data.params["cut"]) == 6000
    assert len(data.tags["note"]) == 8000


def test_non_numeric_metric_is_refused_before_sending(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(InvalidParameterValue, match=r"'acc'.*'high'.*number"):
        client.log_metric(run_id, "acc", "high")  # type: ignore[arg-type]


def test_run_lifecycle(client: Client, experiment_id: str) -> None:
    run = client.create_run(experiment_id, tags={"mlflow.user": "ada", "k": "v"}, run_name="r1")
    assert isinstance(run, Run)
    info = run.info
    assert len(info.run_id) == 32 and info.run_uuid == info.run_id
    assert (info.status, info.run_name, info.user_id) == ("RUNNING", "r1", "ada")
    assert info.artifact_uri and info.artifact_uri.endswith(f"/{info.run_id}/artifacts")
    assert run.data.tags["k"] == "v"

    client.update_run(info.run_id, name="r2")
    client.set_terminated(info.run_id, "KILLED")
    ended = client.get_run(info.run_id).info
    assert (ended.status, ended.run_name) == ("KILLED", "r2")
    assert ended.end_time is not None and ended.end_time >= info.start_time

    client.delete_run(info.run_id)
    assert client.get_run(info.run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id]) == []
    client.restore_run(info.run_id)
    assert [r.info.run_id for r in client.search_runs(experiment_id)] == [info.run_id]


def test_tags_and_latest_metrics(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "note", "first")
    client.set_tag(run_id, "note", "second")
    client.set_tag(run_id, "gone", "x")
    client.delete_tag(run_id, "gone")
    client.log_metric(run_id, "loss", 0.5, timestamp=1000, step=2)
    client.log_metric(run_id, "loss", 0.9, timestamp=2000, step=1)  # earlier step: not latest
    data = client.get_run(run_id).data
    assert data.tags["note"] == "second" and "gone" not in data.tags
    assert data.metrics == {"loss": 0.5}


def test_latest_metric_of_a_one_key_batch_is_its_highest_step(
    client: Client, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    batch = [
        Metric("loss", 0.3, 3_000, 3),
        Metric("loss", 0.1, 4_000, 1),
        Metric("loss", 0.2, 5_000, 2),
    ]
    client.log_batch(run_id, metrics=batch)
    assert client.get_run(run_id).data.metrics == {"loss": 0.3}


def test_a_nan_metric_matches_no_comparison(client: Client, experiment_id: str) -> None:
    nan_run = client.create_run(experiment_id, run_name="nan").info.run_id
    high_run = client.create_run(experiment_id, run_name="high").info.run_id
    client.log_metric(nan_run, "m", float("nan"))
    client.log_metric(high_run, "m", 0.9)
    found = client.search_runs([experiment_id], "metrics.m > 0.5")
    assert [r.info.run_name for r in found] == ["high"]
    below = client.search_runs([experiment_id], "metrics.m < 0.5")
    assert below == []


def test_search_runs_filters_orders_and_pages(client: Client, experiment_id: str) -> None:
    for i in range(5):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_metric(run_id, "acc", i / 10)
        client.log_param(run_id, "lr", "0.01" if i % 2 else "0.1")
    found = client.search_runs(
        [experiment_id], "metrics.acc >= 0.1 and params.lr = '0.01'", order_by=["metrics.acc DESC"]
    )
    assert [r.info.run_name for r in found] == ["r3", "r1"]
    first = client.search_runs([experiment_id], max_results=2, order_by=["attributes.run_name"])
    assert len(first) == 2 and first.token
    rest = client.search_runs(
        [experiment_id], max_results=10, order_by=["attributes.run_name"], page_token=first.token
    )
    assert [r.info.run_name for r in first + rest] == ["r0", "r1", "r2", "r3", "r4"]
    assert rest.token is None


def test_log_batch_above_server_limits_is_split(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    metrics = [Metric("loss", float(i), 1_000 + i, i) for i in range(2_500)]
    params = [Param(f"p{i}", str(i)) for i in range(150)]
    tags = [RunTag(f"t{i}", str(i)) for i in range(130)]
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    run = client.get_run(run_id)
    assert len(run.data.params) == 150
    assert sum(1 for key in run.data.tags if key.startswith("t")) == 130
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(2_500))
    assert history[-1] == Metric("loss", 2499.0, 3_499, 2_499)


def test_log_batch_rejects_a_bad_param_before_metrics(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p0", "original")
    metrics = [Metric("m", 1.0, 1, i) for i in range(1_500)]
    params = [Param(f"p{i}", "new") for i in range(120)]
    with pytest.raises(InvalidParameterValue):
        client.log_batch(run_id, metrics=metrics, params=params)
    # The first call carries the conflicting param; it fails whole, so no metric was written.
    assert client.get_metric_history(run_id, "m") == []


def test_metric_history_bulk_interval(client: Client, experiment_id: str) -> None:
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    for run_id in run_ids:
        client.log_batch(run_id, metrics=[Metric("loss", s / 10, 1, s) for s in range(20)])
    points = client.get_metric_history_bulk_interval(run_ids, "loss", start_step=5, end_step=9)
    assert {m.run_id for m in points} == set(run_ids)
    assert sorted({m.step for m in points}) == [5, 6, 7, 8, 9]


def test_log_inputs(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    dataset = Dataset("iris", "d1g35t", "local", '{"uri": "/data/iris.csv"}')
    client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("iris", "d1g35t")]
    assert inputs[0].tags == [InputTag("mlflow.data.context", "train")]


def test_gateway_calls_carry_credentials_and_the_named_store(
    grpc_stack: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(grpc_stack.tracking_uri)  # type: ignore[attr-defined]
    assert client._transport.metadata() == []
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cret")
    monkeypatch.setenv("MLGRID_STORE_URI", "postgresql://db/other")
    assert client._transport.metadata() == [
        ("authorization", "Bearer s3cret"),
        ("mlgrid-store-uri", "postgresql://db/other"),
    ]
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    assert ("authorization", "Basic YWRhOnB3") in client._transport.metadata()


def test_building_a_client_leaves_the_shared_transport_as_it_was(
    grpc_stack: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials and the named store belong to talking to a gateway, not to a Client: a
    # transport carries them on its own, and clients built on it change nothing process-wide.
    shared = get_tracking_transport(grpc_stack.tracking_uri)  # type: ignore[attr-defined]
    providers = list(shared.metadata_providers)
    monkeypatch.setenv("MLGRID_TRACKING_TOKEN", "t0k")
    assert shared.metadata() == [("authorization", "Bearer t0k")]
    MlflowClient(grpc_stack.tracking_uri)  # type: ignore[attr-defined]
    MlflowClient(grpc_stack.tracking_uri)  # type: ignore[attr-defined]
    assert shared.metadata_providers == providers
    assert shared.metadata() == [("authorization", "Bearer t0k")]


def test_embedded_calls_name_no_store(embedded_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGRID_STORE_URI", "postgresql://db/other")
    # The embedded stack serves the tracking URI's own store; nothing to route.
    assert MlflowClient(embedded_uri)._transport.metadata() == []


def test_history_falls_back_to_pages_when_streaming_is_not_served() -> None:
    """A minimal backend (e.g. a plugin) that serves only the paged GetMetricHistory."""
    from concurrent import futures

    import grpc

    from mlgrid.api.tracking.v1 import tracking_pb2, tracking_service_pb2, tracking_service_pb2_grpc

    class PagedOnly(tracking_service_pb2_grpc.TrackingServiceServicer):
        def GetMetricHistory(self, request, context):  # type: ignore[no-untyped-def]
            start = int(request.page_token or 0)
            points = [
                tracking_pb2.Metric(key=request.metric_key, value=s, timestamp=s, step=s)
                for s in range(start, min(start + request.max_results, 30_000))
            ]
            token = str(start + len(points)) if start + len(points) < 30_000 else ""
            return tracking_service_pb2.GetMetricHistoryResponse(
                metrics=points, next_page_token=token
            )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server(PagedOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        history = MlflowClient(f"grpc://127.0.0.1:{port}").get_metric_history("r" * 32, "loss")
    finally:
        server.stop(grace=None)
    assert [m.step for m in history] == list(range(30_000))


def test_history_from_a_server_that_predates_columns() -> None:
    """A server older than StreamMetricHistoryRequest.columnar ignores it and streams a Metric
    message per point: the client reads those."""
    from concurrent import futures

    import grpc

    from mlgrid.api.tracking.v1 import tracking_pb2, tracking_service_pb2, tracking_service_pb2_grpc

    class PerPointOnly(tracking_service_pb2_grpc.TrackingServiceServicer):
        def StreamMetricHistory(self, request, context):  # type: ignore[no-untyped-def]
            for start in (0, 10_000):
                yield tracking_service_pb2.StreamMetricHistoryResponse(
                    metrics=[
                        tracking_pb2.Metric(
                            key=request.metric_key, value=s / 2, timestamp=s, step=s
                        )
                        for s in range(start, start + 10_000)
                    ]
                )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server(PerPointOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        history = MlflowClient(f"grpc://127.0.0.1:{port}").get_metric_history("r" * 32, "loss")
    finally:
        server.stop(grace=None)
    assert [m.step for m in history] == list(range(20_000))
    assert history[-1] == Metric("loss", 19_999 / 2, 19_999, 19_999)


def test_history_columns_match_the_history(client: Client, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    metrics = [Metric("loss", i / 4, 5_000 - i, i // 3) for i in range(3_000)]
    metrics[10] = Metric("loss", math.nan, 5, 3)
    client.log_batch(run_id, metrics=metrics)
    history = client.get_metric_history(run_id, "loss")
    columns = list(client.iter_metric_history_columns(run_id, "loss"))
    flat = [p for c in columns for p in zip(c.steps, c.timestamps, c.values, strict=True)]
    assert [(m.step, m.timestamp) for m in history] == [(s, ts) for s, ts, _ in flat]
    assert [str(m.value) for m in history] == [str(v) for _, _, v in flat]
    assert len(history) == 3_000 and any(math.isnan(m.value) for m in history)
    assert [(m.step, m.timestamp) for m in history] == sorted(
        (m.step, m.timestamp) for m in metrics
    )
