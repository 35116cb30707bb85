"""The REST port on a PostgreSQL-backed stack: the same client calls as on SQLite."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from fixtures.stack import Stack, start_stack
from mlflow.entities import Metric

from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid.client import Client

from .helpers import unique


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, stack_postgres_url: str) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("rest_pg")
    with start_stack(root, backend_store_uri=stack_postgres_url, rest=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def pg_rest_url(pg_stack: Stack) -> str:
    return pg_stack.rest_url


@pytest.mark.postgres
def test_tracking_registry_and_artifacts_on_postgresql(pg_rest_url: str, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(pg_rest_url, pg_rest_url)
    experiment_id = client.create_experiment(unique("pg"))
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("acc", 0.1 * s, 1, s) for s in range(5)])
    client.log_param(run_id, "lr", "0.01")
    [found] = client.search_runs([experiment_id], "metrics.acc > 0.3 and params.lr = '0.01'")
    assert found.info.run_id == run_id and found.data.metrics == {"acc": 0.4}
    assert [m.step for m in client.get_metric_history(run_id, "acc")] == [0, 1, 2, 3, 4]
    (tmp_path / "f.txt").write_text("pg")
    client.log_artifact(run_id, str(tmp_path / "f.txt"))
    got = client.download_artifacts(run_id, "f.txt", str(tmp_path / "out"))
    assert Path(got).read_text() == "pg"
    name = unique("pg-model")
    client.create_registered_model(name)
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")  # a version's source holds files
    client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    client.set_registered_model_alias(name, "prod", "1")
    assert client.get_model_version_by_alias(name, "prod").run_id == run_id


@pytest.mark.postgres
def test_a_long_history_is_the_same_through_rest_the_plugin_and_the_sdk(pg_stack: Stack) -> None:
    """150k points: past the first 65,536-point chunk, so PostgreSQL reads the rest over its
    striped connections; every way of reading the history gives every point, in order."""
    total = 150_000
    # Two points a step (the second later in time), a NaN, a value logged as infinity.
    points = [t.Metric(key="h", value=i * 0.5, timestamp=10 * i, step=i // 2) for i in range(total)]
    points[70_001].value = math.nan
    points[99_999].value = math.inf
    stub = pb_grpc.TrackingServiceStub(pg_stack.channel())
    experiment_id = stub.CreateExperiment(
        pb.CreateExperimentRequest(name=unique("long"))
    ).experiment_id
    run_id = stub.CreateRun(pb.CreateRunRequest(experiment_id=experiment_id)).run.info.run_id
    stub.IngestMetrics(
        pb.IngestMetricsRequest(run_id=run_id, metrics=points[i : i + 10_000])
        for i in range(0, total, 10_000)
    )
    expected = [
        (
            p.step,
            p.timestamp,
            "NaN" if math.isnan(p.value) else min(p.value, 1.7976931348623157e308),
        )
        for p in points
    ]

    def seen(history) -> list[tuple[int, int, object]]:
        return [(m.step, m.timestamp, "NaN" if math.isnan(m.value) else m.value) for m in history]

    sdk = Client(pg_stack.tracking_uri)
    assert seen(sdk.get_metric_history(run_id, "h")) == expected
    rest = mlflow.MlflowClient(pg_stack.rest_url)
    assert seen(rest.get_metric_history(run_id, "h")) == expected
    plugin = mlflow.MlflowClient(f"mlgrid://{pg_stack.target}")
    assert seen(plugin.get_metric_history(run_id, "h")) == expected
