"""The variables that tell a run's code where to log, whatever runs it (process, container, Job)."""

from __future__ import annotations

from mlgrid.projects.backend import RunRequest

__all__ = ["run_variables"]


def run_variables(request: RunRequest) -> dict[str, str]:
    """Run id, tracking URI and experiment (MLflow's names and mlgrid's), store, unbuffered."""
    env: dict[str, str] = {}
    for prefix in ("MLFLOW", "MLGRID"):
        env[f"{prefix}_RUN_ID"] = request.run_id
        env[f"{prefix}_TRACKING_URI"] = request.tracking_uri
        env[f"{prefix}_EXPERIMENT_ID"] = request.experiment_id
    if request.store_uri:
        env["MLGRID_STORE_URI"] = request.store_uri
    env["PYTHONUNBUFFERED"] = "1"  # so output streams live, line by line
    return env
