"""Projects that log with the unmodified ``mlflow`` client: ``import mlflow`` reaches mlgrid.

A run is given ``MLFLOW_TRACKING_URI`` in the scheme of mlgrid's MLflow plugin
(``mlgrid://host:port``); the plugin comes with the SDK every environment gets, so an
ordinary MLflow script logs into the run mlgrid created for it.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.projects.submitted import RemoteSubmittedRun
from mlgrid.tracking_uri import resolve_uri

from .helpers import write
from .service import own_projects_service

MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
#: The version installed here, so pip installs it into the project's virtualenv from its cache.
MLFLOW_SKINNY = f"mlflow-skinny=={metadata.version('mlflow-skinny')}"

#: An ordinary MLflow script: no mlgrid import, no tracking URI of its own.
TRAIN = """\
import os, mlflow
from mlflow.tracking import MlflowClient
mlflow.log_param("alpha", "0.5")
mlflow.log_metric("loss", 0.25, step=3)
print(os.environ["MLFLOW_TRACKING_URI"])
print(type(MlflowClient()._tracking_client.store).__name__)
"""


def _run(svc, project: Path, env_manager: str) -> tuple[RemoteSubmittedRun, list[str]]:
    answer = svc.transport.call(
        svc.transport.projects.SubmitRun,
        pb.SubmitRunRequest(backend="local", uri=str(project), env_manager=env_manager),
    )
    submitted = RemoteSubmittedRun(svc.transport, "local", answer.run_id)
    finished = submitted.wait(timeout=300)
    logs = b"".join(c.data for c in submitted.logs()).decode(errors="replace")
    assert finished is True, logs[-3000:]
    stdout = b"".join(c.data for c in submitted.logs() if c.stream == "stdout").decode()
    return submitted, stdout.split()


def _assert_logged(grpc_stack, run_id: str, lines: list[str]) -> None:
    gateway = grpc_stack.tracking_uri.removeprefix("grpc://")
    # MLflow was handed the gateway in its plugin's scheme, and built the plugin's store.
    assert lines == [f"mlgrid://{gateway}", "MlgridTrackingStore"]
    run = Client(grpc_stack.tracking_uri).get_run(run_id)
    assert run.data.params["alpha"] == "0.5"
    assert run.data.metrics == {"loss": 0.25}
    assert run.info.status == "FINISHED"


def test_an_mlflow_script_logs_into_its_run_in_the_services_interpreter(
    grpc_stack, env_root: Path, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {
            "MLproject": "name: mlflow-local\nentry_points: {main: {command: 'python train.py'}}\n",
            "train.py": TRAIN,
        },
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted, lines = _run(svc, project, "local")
    _assert_logged(grpc_stack, submitted.run_id, lines)


def test_an_mlflow_script_logs_from_its_own_virtualenv_through_the_sdks_plugin(
    grpc_stack, env_root: Path, tmp_path: Path
) -> None:
    # The project depends on MLflow's client only; mlgrid (and with it the plugin) is not among
    # its dependencies: the environment gets it from the SDK site, as every environment does.
    project = write(
        tmp_path / "p",
        {
            "MLproject": "name: mlflow-venv\npython_env: python_env.yaml\n"
            "entry_points: {main: {command: 'python train.py'}}\n",
            "python_env.yaml": f'python: "{MINOR}"\ndependencies: ["{MLFLOW_SKINNY}"]\n',
            "train.py": TRAIN,
        },
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted, lines = _run(svc, project, "virtualenv")
    _assert_logged(grpc_stack, submitted.run_id, lines)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("mlgrid://127.0.0.1:50051", "grpc://127.0.0.1:50051"),
        ("mlgrids://gw.example:443", "grpcs://gw.example:443"),
        ("grpc://127.0.0.1:50051", "grpc://127.0.0.1:50051"),
    ],
)
def test_the_sdk_reads_mlflows_name_for_a_gateway(given: str, used: str) -> None:
    # A job configured for MLflow only (MLFLOW_TRACKING_URI) still points the SDK at the gateway.
    assert resolve_uri(given) == used
