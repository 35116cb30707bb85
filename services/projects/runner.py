"""The projects domain: submit runs to a backend, then answer status, wait, cancel and logs.

The runner owns the runs it started (so they outlive the client connections that watch
them), records them in the state directory, and at start reconciles runs that a previous,
dead instance left RUNNING: their leftover processes are killed and the runs marked FAILED.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, MlgridException, ResourceDoesNotExist
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry
from mlgrid.projects.backend import LogChunk, ProjectBackend, SubmittedRun

from .local_backend import LocalBackend, LocalContext, PreparedRun
from .preparation import Submission, load_submission, run_tags
from .state import RunStateStore, kill_leftover_child
from .tracking_client import TrackingClient

log = logging.getLogger(__name__)

__all__ = ["ProjectRunner", "RunAnswer"]

#: Ended runs remembered (status, logs) per service instance.
MAX_REMEMBERED = 500
_STATUS_NAMES = {
    tracking_pb2.RUN_STATUS_RUNNING: "RUNNING",
    tracking_pb2.RUN_STATUS_SCHEDULED: "SCHEDULED",
    tracking_pb2.RUN_STATUS_FINISHED: "FINISHED",
    tracking_pb2.RUN_STATUS_FAILED: "FAILED",
    tracking_pb2.RUN_STATUS_KILLED: "KILLED",
}


class RunAnswer:
    """Status, exit code and message of a run."""

    def __init__(self, status: str, exit_code: int | None = None, message: str = "") -> None:
        self.status = status
        self.exit_code = exit_code
        self.message = message


class ProjectRunner:
    """Runs of one projects service instance."""

    def __init__(
        self,
        tracking: TrackingClient,
        state: RunStateStore,
        *,
        child_tracking_uri: str,
        download: Callable[[str, Path], str],
        kill_grace: float = 10.0,
        artifact_root: str = "",
        keep_workdirs: bool = False,
    ) -> None:
        self.tracking = tracking
        self.state = state
        self.child_tracking_uri = child_tracking_uri
        self.local = LocalBackend(
            LocalContext(
                end_run=self._end_run,
                download=download,
                record_child=lambda run_id, pid, start: state.record(run_id, pid, start),
                forget=state.forget,
                kill_grace=kill_grace,
                keep_workdirs=keep_workdirs,
                artifact_root=artifact_root,
            )
        )
        self.plugins: SchemeRegistry[ProjectBackend] = SchemeRegistry(
            ENTRY_POINT_GROUPS["project_backend"], "project backend"
        )
        self._runs: OrderedDict[str, SubmittedRun] = OrderedDict()
        self._lock = threading.Lock()
        #: Set once the start-up reconciliation has run.
        self.reconciled = threading.Event()
        self.reconciled_runs: list[str] = []

    # -- backends ---------------------------------------------------------------------------

    def backend_names(self) -> list[str]:
        try:
            plugins = self.plugins.schemes()
        except Exception:  # discovery must never keep the service from starting
            plugins = []
        return sorted({"local", *plugins})

    def _plugin(self, name: str) -> ProjectBackend:
        if name not in self.backend_names():
            raise InvalidParameterValue(
                f"backend {name!r} is not available here; known backends: "
                f"{', '.join(self.backend_names())}"
            )
        return self.plugins.get(name)()

    # -- submission -------------------------------------------------------------------------

    def _end_run(self, run_id: str, status: int, store_uri: str | None) -> None:
        self.tracking.terminate_if_running(run_id, status, store_uri)

    def submit(self, sub: Submission) -> SubmittedRun:
        """Validates, creates the tracking run and starts it; returns once it has started."""
        sub.backend = sub.backend or "local"
        plugin = None if sub.backend == "local" else self._plugin(sub.backend)
        tracking_uri = sub.tracking_uri or self.child_tracking_uri
        loaded = load_submission(sub, plan_env=plugin is None)
        try:
            experiment_id = self.tracking.resolve_experiment(
                sub.experiment_id, sub.experiment_name, sub.store_uri
            )
            run = self.tracking.create_run(
                experiment_id, sub.user_id, sub.run_name, run_tags(sub, loaded), sub.store_uri
            )
        except BaseException:
            loaded.discard()
            raise
        run_id = run.info.run_id
        try:
            self.tracking.log_params(run_id, loaded.params.all(), sub.store_uri)
            if plugin is not None:
                config = dict(sub.backend_config)
                config.setdefault("env_manager", sub.env_manager)
                config.setdefault("build_image", sub.build_image)
                config.setdefault("working_directory", sub.working_directory)
                submitted = plugin.run(
                    str(loaded.fetched.directory),
                    sub.entry_point or "main",
                    dict(sub.parameters),
                    loaded.fetched.git_commit,
                    config,
                    tracking_uri,
                    experiment_id,
                    run_id,
                )
            else:
                assert loaded.plan is not None
                self.state.record(run_id)
                submitted = self.local.start(
                    PreparedRun(
                        run_id=run_id,
                        experiment_id=experiment_id,
                        workdir=loaded.workdir,
                        project_dir=loaded.fetched.directory,
                        entry=loaded.entry,
                        params=loaded.params,
                        plan=loaded.plan,
                        tracking_uri=tracking_uri,
                        store_uri=sub.store_uri,
                    )
                )
        except BaseException as exc:
            self.state.forget(run_id)
            loaded.discard()
            with contextlib.suppress(MlgridException):
                self.tracking.terminate_if_running(
                    run_id, tracking_pb2.RUN_STATUS_FAILED, sub.store_uri
                )
            if isinstance(exc, MlgridException):
                raise
            raise InvalidParameterValue(f"run {run_id} could not start: {exc}") from exc
        self._remember(run_id, submitted)
        return submitted

    def _remember(self, run_id: str, submitted: SubmittedRun) -> None:
        with self._lock:
            self._runs[run_id] = submitted
            while len(self._runs) > MAX_REMEMBERED:
                oldest_id, oldest = next(iter(self._runs.items()))
                if oldest.get_status() not in ("FINISHED", "FAILED", "KILLED"):
                    break
                del self._runs[oldest_id]

    def _get(self, run_id: str) -> SubmittedRun | None:
        with self._lock:
            return self._runs.get(run_id)

    # -- queries and control ----------------------------------------------------------------

    def _answer(self, submitted: SubmittedRun) -> RunAnswer:
        return RunAnswer(
            submitted.get_status(),
            getattr(submitted, "exit_code", None),
            getattr(submitted, "message", ""),
        )

    def _tracking_answer(self, run_id: str, store_uri: str | None) -> RunAnswer:
        """For runs this instance did not start (or forgot): the tracking run's status."""
        status = self.tracking.get_status(run_id, store_uri)
        return RunAnswer(_STATUS_NAMES.get(status, "RUNNING"))  # type: ignore[call-overload]

    def status(self, run_id: str, store_uri: str | None = None) -> RunAnswer:
        submitted = self._get(run_id)
        if submitted is None:
            return self._tracking_answer(run_id, store_uri)
        return self._answer(submitted)

    def wait(self, run_id: str, timeout: float | None, store_uri: str | None = None) -> RunAnswer:
        submitted = self._get(run_id)
        if submitted is None:
            return self._tracking_answer(run_id, store_uri)
        submitted.wait(timeout)
        return self._answer(submitted)

    def cancel(self, run_id: str, store_uri: str | None = None) -> RunAnswer:
        submitted = self._get(run_id)
        if submitted is None:
            answer = self._tracking_answer(run_id, store_uri)
            if answer.status in ("RUNNING", "SCHEDULED"):
                raise InvalidParameterValue(
                    f"run {run_id} is not run by this projects service; it cannot be cancelled here"
                )
            return answer
        submitted.cancel()
        return self._answer(submitted)

    def logs(self, run_id: str, follow: bool) -> Iterator[LogChunk]:
        submitted = self._get(run_id)
        if submitted is None:
            raise ResourceDoesNotExist(
                f"no logs for run {run_id!r}: it was not started by this projects service "
                "(or has been forgotten since)"
            )
        return submitted.logs(follow=follow)

    # -- life cycle -------------------------------------------------------------------------

    def reconcile(self, attempts: int = 60, delay: float = 1.0) -> list[str]:
        """Marks runs of dead previous instances FAILED (retrying while tracking is down)."""
        done: list[str] = []
        for owned in self.state.orphans():
            if kill_leftover_child(owned):
                log.warning("killed leftover processes of orphaned run %s", owned.run_id)
            for attempt in range(attempts):
                try:
                    self.tracking.terminate_if_running(
                        owned.run_id, tracking_pb2.RUN_STATUS_FAILED, None
                    )
                    done.append(owned.run_id)
                    self.state.forget(owned.run_id)
                    break
                except ResourceDoesNotExist:
                    self.state.forget(owned.run_id)
                    break
                except MlgridException as exc:
                    if attempt == attempts - 1:
                        log.warning("could not reconcile run %s: %s", owned.run_id, exc)
                    time.sleep(delay)
        self.reconciled_runs = done
        self.reconciled.set()
        return done

    def start_reconciling(self) -> None:
        threading.Thread(target=self.reconcile, name="projects-reconcile", daemon=True).start()

    def close(self) -> None:
        """Stops the runs still going (they end FAILED: nobody would supervise them)."""
        with self._lock:
            active = [r for r in self._runs.values() if r.get_status() in ("RUNNING", "SCHEDULED")]
        for submitted in active:
            abort = getattr(submitted, "abort", None)
            try:
                if abort is not None:
                    abort("the projects service stopped")
                else:
                    submitted.cancel()
            except Exception as exc:
                log.warning("could not stop run %s: %s", submitted.run_id, exc)
        self.state.close()
        self.tracking.close()
