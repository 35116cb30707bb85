"""The variables that tell a run's code where to log, whatever runs it (process, container, Job)."""

from __future__ import annotations

from mlgrid.projects.backend import RunRequest
from mlgrid.uris import mlflow_gateway_uri

__all__ = ["CREDENTIAL_VARIABLES", "is_service_secret", "run_variables", "split_credentials"]

#: The service's own configuration (database URLs may hold credentials): a run talks to the
#: tracking URI it is given, never to the stores behind it.
SERVICE_ONLY = (
    "MLGRID_BACKEND_STORE_URI",
    "MLGRID_REGISTRY_STORE_URI",
    "MLGRID_GATEWAY_TARGET",
    "MLGRID_PUBLIC_TRACKING_URI",
)
#: Credentials of whoever started the service: a run logs with its own (the submitter's token).
SERVICE_CREDENTIALS = tuple(
    f"{prefix}_TRACKING_{name}"
    for prefix in ("MLFLOW", "MLGRID")
    for name in ("TOKEN", "USERNAME", "PASSWORD")
)


#: The run's own credential (auth on), under mlgrid's and MLflow's names: what a backend that
#: writes the environment into an object others may read (a Kubernetes Job) keeps apart.
CREDENTIAL_VARIABLES = ("MLGRID_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN")


def split_credentials(variables: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``variables`` as (everything but the run's credential, the credential)."""
    plain = {k: v for k, v in variables.items() if k not in CREDENTIAL_VARIABLES}
    return plain, {k: v for k, v in variables.items() if k in CREDENTIAL_VARIABLES}


def is_service_secret(name: str) -> bool:
    """Whether ``name`` is the service's own setting or secret, never handed to a run: its
    stores, its credentials, and every auth setting (the assertion-signing secret above all)."""
    return name in SERVICE_ONLY or name in SERVICE_CREDENTIALS or name.startswith("MLGRID_AUTH")


def run_variables(request: RunRequest) -> dict[str, str]:
    """Run id, tracking URI and experiment (MLflow's names and mlgrid's), store, the run's
    credential (auth on), unbuffered.

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
    if request.tracking_token:  # auth on: the run logs as the user who submitted it
        env["MLGRID_TRACKING_TOKEN"] = env["MLFLOW_TRACKING_TOKEN"] = request.tracking_token
    env["PYTHONUNBUFFERED"] = "1"  # so output streams live, line by line
    return env
