"""The variables that tell a run's code where to log, whatever runs it (process, container, Job)."""

from __future__ import annotations

from urllib.parse import urlsplit

from mlgrid.projects.backend import RunRequest

__all__ = ["mlflow_tracking_uri", "run_variables"]

#: A gateway as the SDK names it -> as the ``mlflow`` client names it through mlgrid's MLflow
#: plugin (mlgrid.mlflow_plugin.uris): the same gateway, in MLflow's plugin schemes.
_MLFLOW_SCHEMES = {"grpc": "mlgrid", "grpcs": "mlgrids"}


def mlflow_tracking_uri(tracking_uri: str) -> str:
    """``MLFLOW_TRACKING_URI`` for a run: a gateway as ``mlgrid://host:port``, so a project that
    logs with the ``mlflow`` client (and has mlgrid's plugin, which the SDK carries) reaches the
    same gateway; any other URI unchanged."""
    parts = urlsplit(tracking_uri)
    scheme = _MLFLOW_SCHEMES.get(parts.scheme)
    return f"{scheme}://{parts.netloc}" if scheme and parts.netloc else tracking_uri


def run_variables(request: RunRequest) -> dict[str, str]:
    """Run id, tracking URI and experiment (MLflow's names and mlgrid's), store, unbuffered.

    The SDK reads the ``MLGRID_`` names first; the ``mlflow`` client reads the ``MLFLOW_`` ones.
    """
    env: dict[str, str] = {
        "MLGRID_TRACKING_URI": request.tracking_uri,
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri(request.tracking_uri),
    }
    for prefix in ("MLFLOW", "MLGRID"):
        env[f"{prefix}_RUN_ID"] = request.run_id
        env[f"{prefix}_EXPERIMENT_ID"] = request.experiment_id
    if request.store_uri:
        env["MLGRID_STORE_URI"] = request.store_uri
    env["PYTHONUNBUFFERED"] = "1"  # so output streams live, line by line
    return env
