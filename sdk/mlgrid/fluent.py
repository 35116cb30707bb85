"""The fluent API: ``mlgrid.start_run()``, ``mlgrid.log_metric(...)``, ... with MLflow's names,
signatures and behaviour, so that ``import mlgrid as mlflow`` runs MLflow tracking scripts.

What the API remembers between calls (the chosen experiment, the active runs, the last run,
the shared clients) is one object, :data:`state` (:class:`mlgrid.fluent_state.FluentState`); the
other fluent modules (experiments, searches, artifacts, models, the registry) use it and
:func:`get_or_start_run` / :func:`current_experiment_id`, never this module's private names.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from mlgrid import async_logging, system_metrics
from mlgrid import environment as env
from mlgrid.async_logging import RunOperations
from mlgrid.client import Client, _metric_value
from mlgrid.context import resolve_tags
from mlgrid.context.tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_RUN_NOTE
from mlgrid.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
)
from mlgrid.exceptions import InvalidParameterValue, MlgridException
from mlgrid.fluent_state import FluentState

DEFAULT_EXPERIMENT_ID = "0"

#: Everything the fluent API remembers between calls (see mlgrid.fluent_state).
state = FluentState()
#: Run id -> its system metrics sampler (start_run(log_system_metrics=True)); ended by end_run.
_system_monitors: dict[str, system_metrics.SystemMetricsMonitor] = {}


class ActiveRun(Run):
    """The run returned by :func:`start_run`; as a context manager it ends the run on exit:
    FINISHED normally, FAILED on an exception, KILLED on Ctrl-C."""

    def __init__(self, run: Run) -> None:
        object.__setattr__(self, "info", run.info)
        object.__setattr__(self, "data", run.data)
        object.__setattr__(self, "inputs", run.inputs)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        stack = state.runs
        if any(run.info.run_id == self.info.run_id for run in stack):
            # End runs nested inside this one that were left open, then this one.
            while stack and stack[-1].info.run_id != self.info.run_id:
                end_run(status)
            end_run(status)


# -- tracking URI and experiments ----------------------------------------------------------


def set_tracking_uri(uri: Any) -> None:
    """Sets where tracking calls go (``grpc://host:port``, ``sqlite:///…``, ``postgresql://…``)."""
    from mlgrid import tracking_uri

    tracking_uri.set_tracking_uri(uri)


def set_registry_uri(uri: Any) -> None:
    from mlgrid import tracking_uri

    tracking_uri.set_registry_uri(uri)


def _experiment_id_from_env() -> str | None:
    name = env.MLGRID_EXPERIMENT_NAME.get()
    experiment_id = env.MLGRID_EXPERIMENT_ID.get()
    client = state.client()
    if name:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return client.create_experiment(name)
        if experiment_id and experiment_id != experiment.experiment_id:
            raise InvalidParameterValue(
                f"{env.MLGRID_EXPERIMENT_NAME.source()}={name!r} names experiment "
                f"{experiment.experiment_id}, but {env.MLGRID_EXPERIMENT_ID.source()}="
                f"{experiment_id!r}; set only one, or make them agree"
            )
        return experiment.experiment_id
    if experiment_id:
        try:
            return client.get_experiment(experiment_id).experiment_id
        except MlgridException as exc:
            raise type(exc)(
                f"{env.MLGRID_EXPERIMENT_ID.source()}={experiment_id!r} names no experiment "
                f"in {client.tracking_uri}: {exc.message}"
            ) from exc
    return None


def current_experiment_id() -> str:
    """The experiment new runs go to: set_experiment's, else the environment's, else "0"."""
    return state.experiment_id or _experiment_id_from_env() or DEFAULT_EXPERIMENT_ID


# -- runs ----------------------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Starts a new run (or resumes ``run_id`` / ``MLGRID_RUN_ID``) and makes it active.

    Use as a context manager to end it automatically. ``nested=True`` starts a child of the
    active run (tag ``mlflow.parentRunId``). New runs get context tags (user, source, git);
    explicit ``tags`` win over them. ``log_system_metrics=True`` (or
    ``MLGRID_ENABLE_SYSTEM_METRICS_LOGGING``) logs CPU, memory, disk, network and GPU usage as
    ``system/…`` metrics until the run ends (mlgrid.system_metrics; needs psutil).
    """
    stack = state.runs
    if stack and not nested:
        raise InvalidParameterValue(
            f"run {stack[-1].info.run_id} is already active; end it with end_run() first, or "
            "pass nested=True to start a child run"
        )
    if log_system_metrics is None:
        log_system_metrics = env.MLGRID_ENABLE_SYSTEM_METRICS_LOGGING.get()
    if log_system_metrics:
        system_metrics.require_psutil()  # refused before a run is created
    _install_exit_hooks()
    client = state.client()
    existing = run_id
    if existing is None and env.MLGRID_RUN_ID.get():
        existing = env.MLGRID_RUN_ID.get()
        # Consumed once, as MLflow does: later start_run() calls create new runs.
        env.MLGRID_RUN_ID.unset()
    user_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if description:
        user_tags[MLFLOW_RUN_NOTE] = description
    if parent_run_id is not None:
        parent = client.get_run(parent_run_id)
        if parent.info.status != "RUNNING":
            raise InvalidParameterValue(
                f"parent_run_id {parent_run_id!r} is {parent.info.status}; a parent run must be "
                "RUNNING"
            )
    elif nested and stack:
        parent_run_id = stack[-1].info.run_id

    if existing:
        run = _resume(client, existing, run_name, user_tags)
    else:
        if parent_run_id is not None:
            user_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        if run_name:
            user_tags[MLFLOW_RUN_NAME] = run_name
        experiment = str(experiment_id) if experiment_id is not None else current_experiment_id()
        run = client.create_run(experiment, tags=resolve_tags(user_tags), run_name=run_name)
    active = ActiveRun(run)
    stack.append(active)
    if log_system_metrics:
        _system_monitors[run.info.run_id] = system_metrics.SystemMetricsMonitor(
            client, run.info.run_id
        ).start()
    return active


def _resume(client: Client, run_id: str, run_name: str | None, tags: dict[str, str]) -> Run:
    run = client.get_run(run_id)
    if state.experiment_id is not None and state.experiment_id != run.info.experiment_id:
        raise InvalidParameterValue(
            f"cannot resume run {run_id}: it belongs to experiment {run.info.experiment_id}, "
            f"but set_experiment() chose {state.experiment_id}"
        )
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise InvalidParameterValue(f"cannot resume run {run_id}: it is deleted")
    client.update_run(run_id, status="RUNNING", name=run_name)
    if tags:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)
    return client.get_run(run_id)


def end_run(status: str = "FINISHED") -> None:
    """Ends the active run (if any) with ``status``. Queued asynchronous logging is written
    first; its failures are raised here, after the run has been ended."""
    stack = state.runs
    if not stack:
        return
    run = stack[-1]
    flush_error: BaseException | None = None
    try:
        async_logging.flush_all()
    except BaseException as exc:
        flush_error = exc
    state.last_run_id = run.info.run_id
    monitor = _system_monitors.pop(run.info.run_id, None)
    if monitor is not None:
        monitor.stop()
    try:
        state.client().set_terminated(
            run.info.run_id, RunStatus.to_string(RunStatus.from_string(status))
        )
    finally:
        stack.pop()
    if flush_error is not None:
        raise flush_error


def active_run() -> ActiveRun | None:
    stack = state.runs
    return stack[-1] if stack else None


def last_active_run() -> Run | None:
    """The active run, else the run most recently ended in this thread (fresh from the
    server, with everything logged to it), else None."""
    current = active_run()
    run_id = current.info.run_id if current else state.last_run_id
    return state.client().get_run(run_id) if run_id else None


def get_or_start_run() -> ActiveRun:
    """The active run, starting one (as MLflow's logging functions do) when there is none."""
    return active_run() or start_run()


def _run_id(run_id: str | None) -> str:
    return run_id or get_or_start_run().info.run_id


def get_run(run_id: str) -> Run:
    return state.client().get_run(run_id)


def get_parent_run(run_id: str) -> Run | None:
    return state.client().get_parent_run(run_id)


def delete_run(run_id: str) -> None:
    state.client().delete_run(run_id)


# -- logging -------------------------------------------------------------------------------


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Logs a param to the active run and returns ``value``."""
    return state.client().log_param(_run_id(None), key, value, synchronous=synchronous)


def log_params(
    params: Mapping[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> RunOperations | None:
    batch = [Param(str(k), str(v)) for k, v in params.items()]
    return state.client().log_batch(_run_id(run_id), params=batch, synchronous=synchronous)


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
) -> RunOperations | None:
    """Logs one metric point to the active run (or ``run_id``)."""
    # As MLflow's fluent API: a timestamp of 0 means now (its client keeps 0; so does ours).
    return state.client().log_metric(
        _run_id(run_id), key, value, timestamp=timestamp or None, step=step, synchronous=synchronous
    )


def log_metrics(
    metrics: Mapping[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
) -> RunOperations | None:
    """Logs several metrics at one step and timestamp, in one batch."""
    when = timestamp or int(time.time() * 1000)
    batch = [Metric(k, _metric_value(k, v), when, step or 0) for k, v in metrics.items()]
    return state.client().log_batch(_run_id(run_id), metrics=batch, synchronous=synchronous)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> RunOperations | None:
    return state.client().set_tag(_run_id(None), key, value, synchronous=synchronous)


def set_tags(tags: Mapping[str, Any], synchronous: bool | None = None) -> RunOperations | None:
    batch = [RunTag(str(k), str(v)) for k, v in tags.items()]
    return state.client().log_batch(_run_id(None), tags=batch, synchronous=synchronous)


def delete_tag(key: str) -> None:
    state.client().delete_tag(_run_id(None), key)


def log_input(
    dataset: Any,
    context: str | None = None,
    tags: Mapping[str, str] | None = None,
    model: Any = None,
) -> None:
    """Records that the active run used ``dataset`` (an :class:`mlgrid.entities.Dataset`, or
    any object with MLflow's ``_to_mlflow_entity()``); ``context`` such as "train" becomes the
    input tag ``mlflow.data.context``."""
    entity = dataset._to_mlflow_entity() if hasattr(dataset, "_to_mlflow_entity") else dataset
    if not isinstance(entity, Dataset):
        entity = Dataset(
            name=entity.name,
            digest=entity.digest,
            source_type=entity.source_type,
            source=entity.source,
            schema=getattr(entity, "schema", None),
            profile=getattr(entity, "profile", None),
        )
    input_tags = [InputTag(k, str(v)) for k, v in (tags or {}).items()]
    if context:
        input_tags.append(InputTag("mlflow.data.context", context))
    state.client().log_inputs(_run_id(None), [DatasetInput(entity, input_tags)])


def flush_async_logging() -> None:
    """Waits for every queued asynchronous logging call; raises failures not yet reported."""
    async_logging.flush_all()


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    return state.client().get_metric_history(run_id, key)


# -- process exit --------------------------------------------------------------------------

_hooks_installed = False
_uncaught_exception = False


def _install_exit_hooks() -> None:
    """At exit, end runs left open: FAILED when the script died of an uncaught exception,
    FINISHED otherwise (MLflow ends them FINISHED regardless)."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        global _uncaught_exception
        _uncaught_exception = True
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    async_logging.register_exit_hook(_end_runs_at_exit)


def _end_runs_at_exit() -> None:
    status = "FAILED" if _uncaught_exception else "FINISHED"
    while state.runs:
        try:
            end_run(status)
        except Exception as exc:  # the run is ended; report the flush failure, don't hide it
            print(f"mlgrid: at exit: {exc}", file=sys.stderr)
