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
import time
from collections.abc import Iterator
from pathlib import Path

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.env_cache import BuildOutput
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import (
    TERMINAL_STATUSES,
    BackendHost,
    LogChunk,
    OwnedHandle,
    ProjectBackend,
    RunRequest,
    SubmittedRun,
)
from mlgrid.projects.params import build_command, needs_download
from mlgrid.uris import is_gateway_uri

from .environments import EnvironmentPlan, build_environment, plan_environment
from .logbuffer import LogBuffer
from .process import ChildProcess, host_id, kill_leftover_group
from .run_limits import (
    RunLimits,
    RunUser,
    directory_bytes,
    give_to,
    resolve_run_user,
    unreachable_part,
)
from .run_variables import is_service_secret, run_variables

log = logging.getLogger(__name__)

__all__ = ["TRACKING_STATUS", "LocalBackend", "LocalSubmittedRun", "child_environment"]

#: Variables that belong to one run and must not leak from the service's own environment.
_RUN_SCOPED = tuple(
    f"{prefix}_{name}"
    for prefix in ("MLFLOW", "MLGRID")
    for name in ("RUN_ID", "EXPERIMENT_ID", "EXPERIMENT_NAME", "TRACKING_URI", "STORE_URI")
)
#: How often the supervisor checks the wall-clock time and the working copy's size.
_LIMIT_CHECK_SECONDS = 1.0
#: How much of the run's last stderr is read to tell why it failed (e.g. MemoryError).
_TAIL_BYTES = 8192
#: A shell's exit codes for "found but not executable" and "not found".
_CANNOT_EXECUTE = (126, 127)
TRACKING_STATUS = {
    "FINISHED": tracking_pb2.RUN_STATUS_FINISHED,
    "FAILED": tracking_pb2.RUN_STATUS_FAILED,
    "KILLED": tracking_pb2.RUN_STATUS_KILLED,
}


def child_environment(
    request: RunRequest, activation: dict[str, str], artifact_root: str
) -> dict[str, str]:
    """The child's environment: the service's, minus run-scoped variables, plus this run's."""
    env = {k: v for k, v in os.environ.items() if k not in _RUN_SCOPED and not is_service_secret(k)}
    env.update(activation)
    env.update(run_variables(request))
    if not is_gateway_uri(request.tracking_uri) and artifact_root:
        env.setdefault("MLGRID_DEFAULT_ARTIFACT_ROOT", artifact_root)
    return env


class LocalSubmittedRun(SubmittedRun):
    """A run of the local backend, supervised by a thread of the service."""

    def __init__(self, request: RunRequest, plan: EnvironmentPlan, host: BackendHost) -> None:
        self._request = request
        self._plan = plan
        self._host = host
        self.log = LogBuffer(host.log_budget)
        self._status = "SCHEDULED"
        self.exit_code: int | None = None
        self.message = ""
        self._cancelled = False
        self._stop_status = ("KILLED", "cancelled")
        self._build_output = BuildOutput(self.log.system)
        self._reach_warning = ""
        self._child: ChildProcess | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name=f"project-run-{request.run_id[:8]}", daemon=True
        )
        self._thread.start()

    @property
    def run_id(self) -> str:
        return self._request.run_id

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

    def taken_over(self, reason: str) -> None:
        # The replica that took the lease cannot adopt this child (it marked the run FAILED, or
        # killed the group if it runs on this host): stop it here too, so it does not go on.
        self.abort(reason)

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
            child.terminate(self._host.kill_grace)
        self._done.wait(self._host.kill_grace + 10)

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
        request, status = self._request, "FAILED"
        try:
            status = self._execute(request)
        except InvalidParameterValue as exc:
            self.message = exc.message
        except Exception as exc:  # a bug must still end the run, not leave it RUNNING
            log.exception("project run %s failed", request.run_id)
            self.message = f"{type(exc).__name__}: {exc}"
        if self._cancelled:
            status, self.message = self._stop_status
        if status != "FINISHED" and self.message:
            self.log.system(f"[mlgrid] {self.message}\n")
        self._finish(status)

    def _execute(self, request: RunRequest) -> str:
        self.log.system(f"[mlgrid] preparing the {self._plan.manager} environment\n")
        activation = build_environment(self._plan, self._build_output)
        values = dict(request.params.declared)
        for name, value in values.items():
            if self._cancelled:
                return "KILLED"
            if needs_download(request.params.types.get(name, "string"), value):
                target = request.workdir / "inputs" / name
                target.mkdir(parents=True, exist_ok=True)
                self.log.system(f"[mlgrid] downloading {value} for parameter {name!r}\n")
                values[name] = self._host.download(value, target)
        command = build_command(request.entry, values, request.params.extra)
        env = child_environment(request, activation, self._host.artifact_root)
        user = self._run_user(request, activation)
        if user is not None:
            env["HOME"] = str(request.workdir)  # the service's home is not the run's
        limits = RunLimits.from_env()
        with self._lock:
            if self._cancelled:
                return "KILLED"
            who = f" as {user.name}" if user else ""
            self.log.system(f"[mlgrid] running{who}: {command}\n")
            # RUNNING before the child exists: its first output can reach a follower before
            # this thread runs again, and a status read then must not say SCHEDULED.
            self._status = "RUNNING"
            self._child = ChildProcess(
                command, request.project_dir, env, self.log, user=user, limits=limits
            )
        child = self._child
        self._host.record(
            OwnedHandle(
                request.run_id,
                request.backend,
                {"pid": child.pid, "start": child.start_time, "host": host_id()},
            )
        )
        code = self._wait_within_limits(child, limits, request.workdir)
        child.join_output()
        self.exit_code = code
        if code == 0:
            return "FINISHED"
        stopped_by = limits.explain(
            code,
            elapsed=time.monotonic() - child.started,
            workdir_bytes=directory_bytes(request.workdir, limits.disk_bytes),
            output_tail=self.log.tail("stderr", _TAIL_BYTES),
        )
        if stopped_by is not None:
            self.message = stopped_by
        elif code in _CANNOT_EXECUTE and self._reach_warning:
            self.message = f"exit code {code}: {self._reach_warning}"
        else:
            self.message = (
                f"killed by signal {-code}"
                if code is not None and code < 0
                else f"exit code {code}"
            )
        return "FAILED"

    def _run_user(self, request: RunRequest, activation: dict[str, str]) -> RunUser | None:
        """The account the command runs as (None: the service's), given the working copy."""
        user = resolve_run_user()
        if user is None:
            return None
        give_to(request.workdir, user)
        blocked = unreachable_part(request.project_dir, user)
        if blocked is not None:
            raise InvalidParameterValue(
                f"runs execute as user {user.name!r} (MLGRID_PROJECTS_RUN_USER), who cannot "
                f"enter {blocked}; point MLGRID_PROJECTS_WORK_DIR at a directory that user can "
                "reach, or set MLGRID_PROJECTS_RUN_USER"
            )
        # The environment's Python (the service's own for env manager "local"): the command
        # may not use it, so an unreachable one is a warning, repeated if the command fails.
        python = shutil.which("python", path=activation.get("PATH"))
        blocked = unreachable_part(Path(python).resolve(), user) if python else None
        if blocked is not None:
            self._reach_warning = (
                f"user {user.name!r} (MLGRID_PROJECTS_RUN_USER) cannot enter {blocked}, so "
                f"cannot run the environment's Python {python}; build environments where "
                "that user can reach them (MLGRID_ENV_ROOT, a Python outside private homes)"
            )
            self.log.system(f"[mlgrid] warning: {self._reach_warning}\n")
        return user

    def _wait_within_limits(self, child: ChildProcess, limits: RunLimits, workdir: Path) -> int:
        """The child's exit code; stops it at the wall-clock limit or when the working copy
        outgrows the disk limit (what no rlimit covers)."""
        while True:
            code = child.wait(_LIMIT_CHECK_SECONDS)
            if code is not None:
                return code
            elapsed = time.monotonic() - child.started
            over_time = bool(limits.wall_seconds) and elapsed >= limits.wall_seconds
            over_disk = bool(limits.disk_bytes) and (
                directory_bytes(workdir, limits.disk_bytes) >= limits.disk_bytes
            )
            if over_time or over_disk:
                what = "wall-clock" if over_time else "working-copy disk"
                self.log.system(f"[mlgrid] the run reached its {what} limit: stopping it\n")
                child.terminate(self._host.kill_grace)
                final = child.wait(5.0)
                return final if final is not None else -9

    def _finish(self, status: str) -> None:
        request = self._request
        try:
            self._host.end_run(request.run_id, TRACKING_STATUS[status], request.store_uri)
        except Exception as exc:  # tracking down: the run's own status is still reported
            log.warning("could not end tracking run %s: %s", request.run_id, exc)
            self.log.system(f"[mlgrid] could not update the tracking run: {exc}\n")
        self._host.forget(request.run_id)
        if not self._host.keep_workdirs:
            shutil.rmtree(request.workdir, ignore_errors=True)
        self.log.system(f"[mlgrid] run {request.run_id} {status}\n")
        self._status = status
        self.log.close()
        self._done.set()


class LocalBackend(ProjectBackend):
    """Starts runs as supervised child processes of the projects service."""

    def __init__(self, host: BackendHost) -> None:
        self.host = host

    @classmethod
    def for_host(cls, host: BackendHost) -> LocalBackend:
        return cls(host)

    def check(self, request: RunRequest) -> None:
        # A missing Python or conda is the caller's to fix: say so before the run exists.
        plan_environment(request.project, request.env_manager)

    def submit(self, request: RunRequest) -> LocalSubmittedRun:
        plan = plan_environment(request.project, request.env_manager)
        self.host.record(OwnedHandle(request.run_id, request.backend))
        return LocalSubmittedRun(request, plan, self.host)

    def recover(self, handle: OwnedHandle) -> None:
        # A child cannot be re-adopted by another process: kill what is left of it, if it runs
        # on this host (a pid of another host names some unrelated process here).
        if handle.details.get("host") not in (None, host_id()):
            return None
        if kill_leftover_group(handle.details):
            log.warning("killed leftover processes of orphaned run %s", handle.run_id)
        return None


assert set(TRACKING_STATUS) <= TERMINAL_STATUSES
