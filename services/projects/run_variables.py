"""The variables that tell a run's code where to log, whatever runs it (process, container, Job)."""

from __future__ import annotations

from mlgrid.projects.backend import RunRequest
from mlgrid.uris import mlflow_gateway_uri

__all__ = ["run_variables"]


def run_variables(request: RunRequest) -> dict[str, str]:
    """Run id, tracking URI and experiment (MLflow's names and mlgrid's), store, unbuffered.

    The SDK reads the ``MLGRID_`` names; the unmodified ``mlflow`` client reads the ``MLFLOW_``
    ones, so its tracking URI names a gateway in the scheme of mlgrid's MLflow plugin
    (``mlgrid://host:port``), which the SDK the run is given carries. (The SDK also reads that
    form, should it only see MLflow's variable.)
    """
    env: dict[str, str] = {
        "MLGRID_TRACKING_URI": request.tracking_uri,
        "MLFLOW_TRACKING_URI": mlflow_gateway_uri(request.tracking_uri),
    }
    for prefix in ("MLFLOW", "MLGRID"):
        env[f"{prefix}_RUN_ID"] = request.run_id
        env[f"{prefix}_EXPERIMENT_ID"] = request.experiment_id
    if request.store_uri:
        env["MLGRID_STORE_URI"] = request.store_uri
    env["PYTHONUNBUFFERED"] = "1"  # so output streams live, line by line
    return env
