"""Running projects: ``mlgrid.projects.run(...)``, as ``mlflow.projects.run``.

The projects service (behind the gateway, or embedded) fetches the project, builds its
environment and runs the entry point as a child process that logs to the tracking store;
this module submits the run, follows its output and reports the outcome.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlgrid import environment as env
from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import LogChunk, ProjectBackend, SubmittedRun
from mlgrid.projects.errors import ExecutionException
from mlgrid.projects.submitted import RemoteSubmittedRun
from mlgrid.uris import is_gateway_uri, redact_credentials

__all__ = [
    "ExecutionException",
    "LogChunk",
    "ProjectBackend",
    "SubmittedRun",
    "run",
]

ENV_MANAGERS = ("local", "virtualenv", "conda")


#: Backend config keys naming a file on the caller's machine -> the key that carries its text.
#: The file is read here, so a projects service elsewhere (in a cluster) gets what the user
#: meant, not a path it cannot read.
_INLINED_FILES = {"kube-job-template-path": "kube-job-template"}
_MAX_INLINED_BYTES = 1024 * 1024


def _inline_files(config: dict[str, Any]) -> dict[str, Any]:
    config = dict(config)
    for path_key, text_key in _INLINED_FILES.items():
        value = config.get(path_key)
        if not isinstance(value, str) or text_key in config:
            continue
        path = Path(value).expanduser()
        if path.is_file() and path.stat().st_size <= _MAX_INLINED_BYTES:
            config[text_key] = path.read_text(encoding="utf-8")
            del config[path_key]
    return config


def _backend_config_json(backend_config: dict[str, Any] | str | None) -> str:
    if backend_config is None:
        return ""
    if isinstance(backend_config, dict):
        return json.dumps(_inline_files(backend_config))
    text = str(backend_config)
    path = Path(text).expanduser()
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidParameterValue(
            f"backend_config must be a JSON object or a JSON file, got {backend_config!r}"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidParameterValue(f"backend_config must be a JSON object, got {parsed!r}")
    return json.dumps(_inline_files(parsed))


def _default_experiment() -> tuple[str, str]:
    """Experiment id / name from the environment, as the fluent API reads them."""
    exp_id = env.MLGRID_EXPERIMENT_ID.get() or ""
    name = "" if exp_id else env.MLGRID_EXPERIMENT_NAME.get() or ""
    return exp_id, name


def print_logs(submitted: SubmittedRun, follow: bool = True) -> None:
    """Copies a run's output to this process's stdout / stderr as it arrives."""
    for chunk in submitted.logs(follow=follow):
        stream = sys.stderr if chunk.stream in ("stderr", "system") else sys.stdout
        stream.write(chunk.data.decode("utf-8", errors="replace"))
        stream.flush()


#: The setting the projects service names when it refuses a path on its own machine
#: (services/projects/source_policy.py).
_LOCAL_PATHS_SETTING = "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS"


def _local_directory_refused(
    uri: str, tracking_uri: str, refusal: InvalidParameterValue
) -> InvalidParameterValue | None:
    """The error a user should see when a directory on this machine was refused by a projects
    service that cannot read it (a cluster, compose, any deployment): the service's own message
    talks about paths on the server, which is not what the user meant. None: not that case."""
    local = Path(uri.partition("#")[0]).expanduser()
    if _LOCAL_PATHS_SETTING not in str(refusal) or not local.is_dir():
        return None
    return InvalidParameterValue(
        f"{uri} is a directory on this machine, and the projects service of "
        f"{redact_credentials(tracking_uri)} "
        "runs elsewhere: it cannot read it (it only runs projects it can fetch). Push the "
        "project to a git repository and run that (mlgrid run https://host/repo.git -v "
        "<commit>), or run the directory against a stack on this machine (mlgrid up, then "
        "MLGRID_TRACKING_URI=grpc://127.0.0.1:50051)."
    )


def run(
    uri: str,
    entry_point: str = "main",
    version: str | None = None,
    parameters: dict[str, Any] | None = None,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    backend: str = "local",
    backend_config: dict[str, Any] | str | None = None,
    env_manager: str | None = None,
    synchronous: bool = True,
    run_name: str | None = None,
    build_image: bool = False,
    run_id: str | None = None,
) -> RemoteSubmittedRun:
    """Runs a project (directory, git repository or zip) and returns the submitted run.

    Synchronous runs print the run's output live and raise :class:`ExecutionException` when
    the run does not finish successfully; asynchronous runs return once the run has started.
    ``run_id`` names an existing, still active run to execute in (its experiment is used), on
    every backend; by default a new run is created.
    """
    from mlgrid.tracking_uri import get_tracking_transport

    if experiment_name and experiment_id:
        raise InvalidParameterValue("give experiment_name or experiment_id, not both")
    if env_manager is not None and env_manager not in ENV_MANAGERS:
        raise InvalidParameterValue(
            f"env_manager {env_manager!r} is not supported; use one of {', '.join(ENV_MANAGERS)}"
        )
    if not experiment_name and not experiment_id:
        experiment_id, experiment_name = _default_experiment()
    transport = get_tracking_transport()
    backend = backend or "local"
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = ""
    request = pb.SubmitRunRequest(
        backend=backend,
        uri=str(uri),
        entry_point=entry_point or "main",
        version=version or "",
        parameters={str(k): str(v) for k, v in (parameters or {}).items()},
        experiment_id=str(experiment_id or ""),
        experiment_name=experiment_name or "",
        backend_config_json=_backend_config_json(backend_config),
        env_manager=env_manager or "",
        run_name=run_name or "",
        # An embedded store is reached by the child through the same URI; a gateway tells
        # the service its own public address.
        tracking_uri="" if is_gateway_uri(transport.tracking_uri) else transport.tracking_uri,
        build_image=build_image,
        user_id=user,
        working_directory=os.getcwd(),
        run_id=run_id or "",
    )
    try:
        answer = transport.call(transport.projects.SubmitRun, request)
    except InvalidParameterValue as exc:
        raise _local_directory_refused(str(uri), transport.tracking_uri, exc) or exc from None
    submitted = RemoteSubmittedRun(transport, backend, answer.run_id)
    if synchronous:
        try:
            print_logs(submitted, follow=True)
            succeeded = submitted.wait()
        except KeyboardInterrupt:
            # As in MLflow: interrupting a synchronous run cancels it.
            sys.stderr.write(f"=== Run (ID '{submitted.run_id}') interrupted, cancelling it ===\n")
            submitted.cancel()
            raise
        if not succeeded:
            detail = f": {submitted.message}" if submitted.message else ""
            raise ExecutionException(
                f"Run (ID '{submitted.run_id}') failed{detail}", run_id=submitted.run_id
            )
    return submitted
