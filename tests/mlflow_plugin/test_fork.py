"""The unmodified ``mlflow`` client on mlgrid in a process that forks: ``multiprocessing``
workers (Linux's default start method) log into the parent's run through the plugin, as they
do against MLflow's server. See tests/sdk/test_fork.py for why forking needs care over gRPC."""

from __future__ import annotations

from pathlib import Path

import mlflow
from fixtures.scripts import run_script

_FORKING = """
import multiprocessing, sys
import mlflow

def work(run_id, step):
    # MLflow's active run does not follow into a child: the worker names the run.
    mlflow.MlflowClient().log_metric(run_id, "child", float(step), step=step)

with mlflow.start_run() as run:
    mlflow.log_param("workers", 2)
    for round_ in range(5):
        mlflow.log_metric("loss", 1.0 / (round_ + 1), step=round_)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            steps = [(run.info.run_id, s) for s in range(round_ * 4, round_ * 4 + 4)]
            pool.starmap_async(work, steps).get(timeout=30)
print(run.info.run_id, flush=True)
"""


def test_forked_workers_log_into_the_parents_run_through_the_plugin(
    mlflow_uri: str, tmp_path: Path
) -> None:
    stdout = run_script(
        tmp_path,
        "forking",
        _FORKING,
        MLFLOW_TRACKING_URI=mlflow_uri,
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    run_id = stdout.split()[-1]
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run_id, "child")
    assert sorted(m.step for m in history) == list(range(20))
    assert client.get_run(run_id).data.params == {"workers": "2"}
    assert client.get_run(run_id).info.status == "FINISHED"
