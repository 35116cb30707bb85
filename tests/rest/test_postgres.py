"""The REST port on a PostgreSQL-backed stack: the same client calls as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from fixtures.stack import start_stack
from mlflow.entities import Metric

from .helpers import unique


@pytest.fixture(scope="module")
def pg_rest_url(tmp_path_factory: pytest.TempPathFactory, stack_postgres_url: str) -> Iterator[str]:
    root = tmp_path_factory.mktemp("rest_pg")
    with start_stack(root, backend_store_uri=stack_postgres_url, rest=True) as stack:
        yield stack.rest_url


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
