"""The ``local`` backend: runs the entry point as a child process of the projects service.

A supervisor thread per run builds the environment (the run is SCHEDULED meanwhile),
downloads remote ``path`` parameters, starts the command in its own process group, copies its
output to the run's log, and when the child exits ends the tracking run (FINISHED / FAILED,
unless the child ended it itself; KILLED when cancelled). The run does not depend on any
client connection: clients only watch it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import TERMINAL_STATUSES, LogChunk, ProjectBackend, SubmittedRun
from mlgrid.projects.params import ResolvedParameters, build_command, needs_download
from mlgrid.projects.spec import EntryPoint
from mlgrid.uris import is_gateway_uri

from .envcache import BuildOutput
from .environments import EnvironmentPlan, build_environment
from .logbuffer import LogBuffer
from .process import ChildProcess

log = logging.getLogger(__name__)

__all__ = ["LocalBackend", "LocalContext", "LocalSubmittedRun", "PreparedRun", "child_environment"]

#: Variables that belong to one run and must not leak from the service's own environment.
_RUN_SCOPED = tuple(
    f"{prefix}_{name}"
    for prefix in ("MLFLOW", "MLGRID")
    for name in ("RUN_ID", "EXPERIMENT_ID", "EXPERIMENT_NAME", "TRACKING_URI", "STORE_URI")
)
#: The service's own configuration (database URLs may hold credentials): a run talks to the
#: tracking URI it is given, never to the stores behind it.
_SERVICE_ONLY = (
    "MLGRID_BACKEND_STORE_URI",
    "MLGRID_REGISTRY_STORE_URI",
    "MLGRID_GATEWAY_TARGET",
    "MLGRID_PUBLIC_TRACKING_URI",
)
_TRACKING_STATUS = {
    "FINISHED": tracking_pb2.RUN_STATUS_FINISHED,
    "FAILED": tracking_pb2.RUN_STATUS_FAILED,
    "KILLED": tracking_pb2.RUN_STATUS_KILLED,
}


@dataclass
class LocalContext:
    """What the local backend needs from the service that hosts it."""

    #: Ends tracking runs: (run_id, tracking status, store_uri) -> None.
    end_run: Callable[[str, int, str | None], None]
    #: Downloads a remote URI into a directory, returning the local path.
    download: Callable[[str, Path], str]
    #: Records the child of a run (for reconciliation after a crash): (run_id, pid, start).
    record_child: Callable[[str, int, str | None], None]
    #: Drops the run's record once it has ended.
    forget: Callable[[str], None]
    #: Seconds between SIGTERM and SIGKILL on cancel.
    kill_grace: float = 10.0
    #: Bytes of output kept per run.
    log_budget: int = 8 * 1024 * 1024
    #: Keep working copies after runs end (debugging).
    keep_workdirs: bool = False
    #: Artifact root handed to children that serve an embedded store themselves.
    artifact_root: str = ""


@dataclass
class PreparedRun:
    """A validated submission, with its tracking run created."""

    run_id: str
    experiment_id: str
    #: The run's scratch directory (working copy, downloads); removed when the run ends.
    workdir: Path
    #: The project directory inside the working copy; the command runs there.
    project_dir: Path
    entry: EntryPoint
    params: ResolvedParameters
    plan: EnvironmentPlan
    #: Tracking URI the child logs to.
    tracking_uri: str
    store_uri: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


def child_environment(
    prepared: PreparedRun, activation: dict[str, str], artifact_root: str
) -> dict[str, str]:
    """The child's environment: the service's, minus run-scoped variables, plus this run's."""
    env = {k: v for k, v in os.environ.items() if k not in _RUN_SCOPED + _SERVICE_ONLY}
    env.update(activation)
    for prefix in ("MLFLOW", "MLGRID"):
        env[f"{prefix}_RUN_ID"] = prepared.run_id
        env[f"{prefix}_TRACKING_URI"] = prepared.tracking_uri
        env[f"{prefix}_EXPERIMENT_ID"] = prepared.experiment_id
    if prepared.store_uri:
        env["MLGRID_STORE_URI"] = prepared.store_uri
    if not is_gateway_uri(prepared.tracking_uri) and artifact_root:
        env.setdefault("MLGRID_DEFAULT_ARTIFACT_ROOT", artifact_root)
    env["PYTHONUNBUFFERED"] = "1"  # so output streams live, line by line
    env.update(prepared.extra_env)
    return env


class LocalSubmittedRun(SubmittedRun):
    """A run of the local backend, supervised by a thread of the service."""

    def __init__(self, prepared: PreparedRun, context: LocalContext) -> None:
        self._prepared = prepared
        self._context = context
        self.log = LogBuffer(context.log_budget)
        self._status = "SCHEDULED"
        self.exit_code: int | None = None
        self.message = ""
        self._cancelled = False
        self._stop_status = ("KILLED", "cancelled")
        self._build_output = BuildOutput(self.log.system)
        self._child: ChildProcess | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name=f"project-run-{prepared.run_id[:8]}", daemon=True
        )
        self._thread.start()

    @property
    def run_id(self) -> str:
        return self._prepared.run_id

    def get_status(self) -> str:
        return self._status

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        return self._status == "FINISHED"

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        """Terminates the process group; the run ends KILLED."""
        self._stop("KILLED", "cancelled", "cancel requested")

    def abort(self, reason: str) -> None:
        """Terminates the run because the service stops; it ends FAILED with ``reason``."""
        self._stop("FAILED", reason, reason)

    def _stop(self, status: str, message: str, note: str) -> None:
        with self._lock:
            if self._done.is_set() or self._cancelled:
                child = None
            else:
                self._cancelled = True
                self._stop_status = (status, message)
                child = self._child
                self.log.system(f"[mlgrid] {note}: terminating the run's processes\n")
                self._build_output.cancel()  # an environment still being built
        if child is not None:
            child.terminate(self._context.kill_grace)
        self._done.wait(self._context.kill_grace + 10)

    def logs(self, follow: bool = False) -> Iterator[LogChunk]:
        position = 0
        while True:
            entries, position, complete = self.log.read(position, wait=1.0 if follow else 0.0)
            for entry in entries:
                yield LogChunk(entry.stream, entry.data, entry.timestamp)
            if complete or not follow:
                return
            if not entries:
                # A heartbeat, so a server streaming this can notice a departed client.
                yield LogChunk("system", b"", 0)

    # -- supervision ------------------------------------------------------------------------

    def _supervise(self) -> None:
        prepared, status = self._prepared, "FAILED"
        try:
            status = self._execute(prepared)
        except InvalidParameterValue as exc:
            self.message = exc.message
        except Exception as exc:  # a bug must still end the run, not leave it RUNNING
            log.exception("project run %s failed", prepared.run_id)
            self.message = f"{type(exc).__name__}: {exc}"
        if self._cancelled:
            status, self.message = self._stop_status
        if status != "FINISHED" and self.message:
            self.log.system(f"[mlgrid] {self.message}\n")
        self._finish(status)

    def _execute(self, prepared: PreparedRun) -> str:
        self.log.system(f"[mlgrid] preparing the {prepared.plan.manager} environment\n")
        activation = build_environment(prepared.plan, self._build_output)
        values = dict(prepared.params.declared)
        for name, value in values.items():
            if self._cancelled:
                return "KILLED"
            if needs_download(prepared.params.types.get(name, "string"), value):
                target = prepared.workdir / "inputs" / name
                target.mkdir(parents=True, exist_ok=True)
                self.log.system(f"[mlgrid] downloading {value} for parameter {name!r}\n")
                values[name] = self._context.download(value, target)
        command = build_command(prepared.entry, values, prepared.params.extra)
        env = child_environment(prepared, activation, self._context.artifact_root)
        with self._lock:
            if self._cancelled:
                return "KILLED"
            self.log.system(f"[mlgrid] running: {command}\n")
            # RUNNING before the child exists: its first output can reach a follower before
            # this thread runs again, and a status read then must not say SCHEDULED.
            self._status = "RUNNING"
            self._child = ChildProcess(command, prepared.project_dir, env, self.log)
        child = self._child
        self._context.record_child(prepared.run_id, child.pid, child.start_time)
        code = child.wait()
        child.join_output()
        self.exit_code = code
        if code == 0:
            return "FINISHED"
        self.message = (
            f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        )
        return "FAILED"

    def _finish(self, status: str) -> None:
        prepared = self._prepared
        try:
            self._context.end_run(prepared.run_id, _TRACKING_STATUS[status], prepared.store_uri)
        except Exception as exc:  # tracking down: the run's own status is still reported
            log.warning("could not end tracking run %s: %s", prepared.run_id, exc)
            self.log.system(f"[mlgrid] could not update the tracking run: {exc}\n")
        self._context.forget(prepared.run_id)
        if not self._context.keep_workdirs:
            shutil.rmtree(prepared.workdir, ignore_errors=True)
        self.log.system(f"[mlgrid] run {prepared.run_id} {status}\n")
        self._status = status
        self.log.close()
        self._done.set()


class LocalBackend(ProjectBackend):
    """Starts prepared runs as supervised child processes."""

    def __init__(self, context: LocalContext) -> None:
        self.context = context

    def start(self, prepared: PreparedRun) -> LocalSubmittedRun:
        return LocalSubmittedRun(prepared, self.context)

    def run(
        self,
        project_uri: str,
        entry_point: str,
        params: dict[str, str],
        version: str | None,
        backend_config: dict[str, Any],
        tracking_uri: str,
        experiment_id: str,
        run_id: str | None,
    ) -> SubmittedRun:
        # The projects service prepares submissions itself (see runner.ProjectRunner) and
        # calls start(); this entry point serves callers holding only the generic interface.
        from .preparation import prepare_local

        if run_id is None:
            raise InvalidParameterValue("the local backend runs a tracking run created for it")
        prepared = prepare_local(
            project_uri,
            entry_point,
            params,
            version,
            backend_config,
            tracking_uri,
            experiment_id,
            run_id,
        )
        return self.start(prepared)


assert set(_TRACKING_STATUS) <= TERMINAL_STATUSES
