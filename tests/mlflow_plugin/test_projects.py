"""``mlflow.projects.run`` logging into mlgrid: MLflow's local project runner creates the run
through the plugin and the project's own process logs to it (it inherits MLFLOW_TRACKING_URI
and MLFLOW_RUN_ID, as with MLflow's own server)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import mlflow
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_ENTRY_POINT, MLFLOW_SOURCE_TYPE

from .conftest import write_file

MLPROJECT = """\
name: tiny
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      label: {type: string, default: none}
    command: "python train.py --alpha {alpha} --label {label}"
"""

TRAIN = """\
import argparse

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
parser.add_argument("--label")
args = parser.parse_args()
with mlflow.start_run():
    mlflow.log_metric("score", args.alpha * 2, step=1)
    mlflow.log_text(args.label, "label.txt")
"""


def test_a_local_project_run_logs_its_params_metrics_and_artifacts(
    experiment_id, tmp_path, monkeypatch
):
    # The project's "python" is this environment's, as in an activated virtualenv.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "project"
    write_file(project / "MLproject", MLPROJECT)
    write_file(project / "train.py", textwrap.dedent(TRAIN))

    submitted = mlflow.projects.run(
        str(project),
        parameters={"alpha": 0.25, "label": "first"},
        experiment_id=experiment_id,
        env_manager="local",
    )
    assert submitted.get_status() == "FINISHED"

    run = mlflow.get_run(submitted.run_id)
    assert run.info.experiment_id == experiment_id
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.25", "label": "first"}
    assert run.data.metrics == {"score": 0.5}
    assert run.data.tags[MLFLOW_SOURCE_TYPE] == "PROJECT"
    assert run.data.tags[MLFLOW_PROJECT_ENTRY_POINT] == "main"
    assert mlflow.artifacts.load_text(f"runs:/{submitted.run_id}/label.txt") == "first"
