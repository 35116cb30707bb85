"""The projects domain: submit runs to a backend, then answer status, wait, cancel and logs.

Every backend (local, docker, kubernetes, a plugin) takes the same path: the submission is
validated into a RunRequest, the backend checks it, the tracking run is created, the backend
submits it. The runner owns the runs it started (so they outlive the client connections that
watch them); backends record each in a lease (leases/) that the runner renews on every heartbeat.
On every heartbeat it also looks for leases whose owner is gone (a replica that died, a previous
instance), takes each over and hands the run to its backend's ``recover``: runs the backend does
not take over are marked FAILED, saying why. Status, wait and cancel work on any replica: for a
run another replica owns they read the tracking run, and a cancel is passed to the owner through
its lease.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, MlgridException, ResourceDoesNotExist
from mlgrid.projects.backend import BackendHost, LogChunk, SubmittedRun
from mlgrid_services.common.auth.identity import current_identity
from mlgrid_services.common.auth.run_tokens import RunTokens

from .backends import DEFAULT_BACKEND, BackendTable
from .leases import Lease, LeaseStore
from .preparation import Submission, load_submission, run_tags
from .tracking_client import TrackingClient

log = logging.getLogger(__name__)

__all__ = ["ProjectRunner", "RunAnswer"]

#: Ended runs remembered (status, logs) per service instance.
MAX_REMEMBERED = 500
#: Heartbeats per lease period: a lease survives a few missed renewals.
HEARTBEATS_PER_PERIOD = 4
#: Seconds between reads of the tracking run while waiting on a run another replica owns.
POLL_SECONDS = 0.5
#: Tag saying why the projects service ended a run FAILED that it could not take over.
FAILURE_TAG = "mlgrid.project.failure"
_ACTIVE = ("RUNNING", "SCHEDULED")
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
        state: LeaseStore,
        *,
        child_tracking_uri: str,
        download: Callable[[str, Path], str],
        kill_grace: float = 10.0,
        artifact_root: str = "",
        keep_workdirs: bool = False,
        sdk_tracking_uri: str = "",
        upload: Callable[[str, str, bytes], None] | None = None,
        run_tokens: RunTokens | None = None,
    ) -> None:
        self.tracking = tracking
        self.state = state
        #: Each run's own credential (auth on): minted at submit, revoked when the run ends.
        self.run_tokens = run_tokens or RunTokens()
        self.child_tracking_uri = child_tracking_uri
        self.host = BackendHost(
            end_run=self._end_run,
            download=download,
            record=state.record,
            forget=state.forget,
            set_tags=tracking.set_tags,
            sdk_tracking_uri=sdk_tracking_uri or child_tracking_uri,
            artifact_root=artifact_root,
            kill_grace=kill_grace,
            keep_workdirs=keep_workdirs,
            save_artifact=self._save_artifact if upload is not None else None,
        )
        self._upload = upload
        #: Every backend by name: the built-ins' table plus ``mlgrid.project_backend`` plugins.
        self.backends = BackendTable(self.host)
        self._runs: OrderedDict[str, SubmittedRun] = OrderedDict()
        self._lock = threading.Lock()
        #: Runs taken over that their backend did not recover, still to be marked FAILED
        #: (tracking may be unreachable for a while): run id -> (lease, reason).
        self._to_fail: dict[str, tuple[Lease, str]] = {}
        self._reconciling = threading.Lock()
        self._stopping = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- backends ---------------------------------------------------------------------------

    def backend_names(self) -> list[str]:
        return self.backends.names()

    # -- submission -------------------------------------------------------------------------

    def _end_run(self, run_id: str, status: int, store_uri: str | None) -> None:
        try:
            self.tracking.terminate_if_running(run_id, status, store_uri)
        finally:
            self.run_tokens.revoke(run_id)

    def _save_artifact(self, run_id: str, store_uri: str | None, path: str, data: bytes) -> None:
        assert self._upload is not None
        self._upload(self.tracking.artifact_uri(run_id, store_uri), path, data)

    def submit(self, sub: Submission) -> SubmittedRun:
        """Validates, creates the tracking run and starts it; returns once it has started."""
        sub.backend = sub.backend or DEFAULT_BACKEND
        backend = self.backends.get(sub.backend)
        loaded = load_submission(sub, sub.tracking_uri or self.child_tracking_uri)
        try:
            backend.check(loaded.request)
            if sub.run_id:
                run = self._requested_run(sub)
                experiment_id = run.info.experiment_id
                self.tracking.set_tags(
                    run.info.run_id, run_tags(sub, loaded).items(), sub.store_uri
                )
            else:
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
            self.tracking.log_params(run_id, loaded.request.params.all(), sub.store_uri)
            request = loaded.request.for_run(run_id, experiment_id, run.info.artifact_uri)
            token = self.run_tokens.mint(current_identity(), run_id, experiment_id)
            submitted = backend.submit(dataclasses.replace(request, tracking_token=token))
        except BaseException as exc:
            self.state.forget(run_id)
            loaded.discard()
            with contextlib.suppress(Exception):
                self.run_tokens.revoke(run_id)
            with contextlib.suppress(MlgridException):
                self.tracking.terminate_if_running(
                    run_id, tracking_pb2.RUN_STATUS_FAILED, sub.store_uri
                )
            if isinstance(exc, MlgridException):
                raise
            raise InvalidParameterValue(f"run {run_id} could not start: {exc}") from exc
        self._remember(run_id, submitted)
        return submitted

    def _requested_run(self, sub: Submission) -> tracking_pb2.Run:
        """The existing run a submission names (MLflow's ``run_id``): it must still be active,
        and in the experiment the submission names, if it names one."""
        assert sub.run_id is not None
        run = self.tracking.get_run(sub.run_id, sub.store_uri)
        if run.info.lifecycle_stage == "deleted":
            raise InvalidParameterValue(f"run_id {sub.run_id!r} names a deleted run")
        if run.info.status not in (
            tracking_pb2.RUN_STATUS_RUNNING,
            tracking_pb2.RUN_STATUS_SCHEDULED,
        ):
            status = _STATUS_NAMES.get(run.info.status, str(run.info.status))
            raise InvalidParameterValue(
                f"run_id {sub.run_id!r} names a run that has ended ({status}); give a run that "
                "is still active, or no run_id to create one"
            )
        if sub.experiment_id and sub.experiment_id != run.info.experiment_id:
            raise InvalidParameterValue(
                f"run_id {sub.run_id!r} belongs to experiment {run.info.experiment_id}, not to "
                f"experiment_id {sub.experiment_id!r}"
            )
        return run

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
            return self._wait_elsewhere(run_id, timeout, store_uri)
        submitted.wait(timeout)
        return self._answer(submitted)

    def _wait_elsewhere(
        self, run_id: str, timeout: float | None, store_uri: str | None
    ) -> RunAnswer:
        """Waits on a run this instance does not supervise by reading its tracking run, while
        a replica holds its lease (or until this one takes it over)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            answer = self._tracking_answer(run_id, store_uri)
            if answer.status not in _ACTIVE or self.state.lease_of(run_id) is None:
                return answer
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return answer
            if self._stopping.wait(
                POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining)
            ):
                return answer
            submitted = self._get(run_id)
            if submitted is not None:  # this instance took it over meanwhile
                submitted.wait(None if deadline is None else max(deadline - time.monotonic(), 0))
                return self._answer(submitted)

    def cancel(self, run_id: str, store_uri: str | None = None) -> RunAnswer:
        submitted = self._get(run_id)
        if submitted is not None:
            submitted.cancel()
            return self._answer(submitted)
        answer = self._tracking_answer(run_id, store_uri)
        if answer.status not in _ACTIVE:
            return answer
        if not self.state.request_cancel(run_id):
            raise InvalidParameterValue(
                f"run {run_id} is not run by the projects service; it cannot be cancelled here"
            )
        # The owner cancels it at its next heartbeat (or whoever takes the lease over, at once).
        return self._wait_elsewhere(run_id, 2 * self.state.period, store_uri)

    def serving_at(self, address: str) -> None:
        """Where other replicas reach this one (recorded in its leases)."""
        self.state.address = address

    def owner_address(self, run_id: str) -> str | None:
        """Where the replica that owns ``run_id`` serves, when it is another one."""
        lease = self.state.lease_of(run_id)
        if lease is None or lease.owner == self.state.instance:
            return None
        return lease.owner_address

    def logs(self, run_id: str, follow: bool) -> Iterator[LogChunk]:
        submitted = self._get(run_id)
        if submitted is None:
            raise ResourceDoesNotExist(
                f"no logs for run {run_id!r}: no projects service replica runs it (it ended and "
                "was forgotten, or it was not started by the projects service)"
            )
        return submitted.logs(follow=follow)

    # -- life cycle -------------------------------------------------------------------------

    def reconcile(self, attempts: int = 60, delay: float = 1.0) -> list[str]:
        """Takes over the runs whose lease's owner is gone and hands each to its backend; marks
        the rest FAILED (trying ``attempts`` times while tracking is down; the next heartbeat
        tries again). Returns the ids of the runs it ended."""
        with self._reconciling:
            return self._reconcile(attempts, delay)

    def _reconcile(self, attempts: int, delay: float) -> list[str]:
        for lease in self.state.claimable():
            if not self.state.take_over(lease):
                continue  # renewed meanwhile, or another replica won it
            log.warning(
                "took over run %s from projects service replica %s (%s)",
                lease.run_id,
                lease.owner,
                lease.owner_host,
            )
            recovered = self._recover(lease)
            if recovered is not None and lease.cancel_requested:
                recovered.cancel()  # asked of the replica that died
            elif recovered is None:
                reason = "" if lease.cancel_requested else _failure_reason(lease)
                self._to_fail[lease.run_id] = (lease, reason)
        done: list[str] = []
        for run_id, (lease, reason) in list(self._to_fail.items()):
            if self._mark_ended(lease, reason, attempts, delay):
                del self._to_fail[run_id]
                self.state.forget(run_id)
                self.run_tokens.revoke(run_id)
                done.append(run_id)
        return done

    def _mark_ended(self, lease: Lease, reason: str, attempts: int, delay: float) -> bool:
        """Ends the tracking run of a lease nobody supervises: FAILED with ``reason``, or KILLED
        (no reason) when a cancel was asked for. False while tracking cannot be reached."""
        run_id = lease.run_id
        status = tracking_pb2.RUN_STATUS_FAILED if reason else tracking_pb2.RUN_STATUS_KILLED
        for attempt in range(attempts):
            try:
                if reason:
                    self.tracking.set_tags(run_id, [(FAILURE_TAG, reason)], None)
                self.tracking.terminate_if_running(run_id, status, None)
                return True
            except ResourceDoesNotExist:
                return True
            except MlgridException as exc:
                if attempt == attempts - 1:
                    log.warning("could not end run %s yet: %s", run_id, exc)
                    return False
                time.sleep(delay)
        return False

    def _recover(self, lease: Lease) -> SubmittedRun | None:
        """The run, when its backend took it over (it is supervised again)."""
        try:
            recovered = self.backends.get(lease.backend).recover(lease.handle)
        except Exception as exc:  # a missing or failing backend: the run cannot be supervised
            log.warning("backend %r could not recover run %s: %s", lease.backend, lease.run_id, exc)
            return None
        if recovered is not None:
            self._remember(lease.run_id, recovered)
        return recovered

    def heartbeat(self) -> None:
        """Renews this instance's leases, gives up runs another replica took over, passes on
        cancels asked of other replicas, then takes over runs of replicas that are gone."""
        lost, cancels = self.state.heartbeat()
        for run_id in lost:
            submitted = self._get(run_id)
            if submitted is not None:
                log.warning("run %s was taken over by another projects service replica", run_id)
                with self._lock:
                    self._runs.pop(run_id, None)
                submitted.taken_over(
                    "another projects service replica took the run over: this one did not "
                    "renew its lease in time"
                )
        for run_id in cancels:
            submitted = self._get(run_id)
            if submitted is not None and submitted.get_status() in _ACTIVE:
                submitted.cancel()
        self.reconcile(attempts=1)

    def _beat(self) -> None:
        interval = self.state.period / HEARTBEATS_PER_PERIOD
        while True:
            try:
                self.heartbeat()
            except Exception as exc:  # the database is down: the next beat tries again
                log.warning("projects service heartbeat failed: %s", exc)
            if self._stopping.wait(interval):
                return

    def start_reconciling(self) -> None:
        """Starts the heartbeat (the first one takes over what dead instances left)."""
        self._heartbeat = threading.Thread(target=self._beat, name="projects-leases", daemon=True)
        self._heartbeat.start()

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
        self._stopping.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)
        try:
            self.state.release()  # runs that go on (Jobs): another replica adopts them at once
        except Exception as exc:  # the database is down: the leases expire instead
            log.warning("could not release the leases of this projects service: %s", exc)
        self.state.close()
        self.tracking.close()


def _failure_reason(lease: Lease) -> str:
    return (
        f"the projects service replica that supervised this run ({lease.owner_host.split('/')[0]}) "
        f"stopped, and its {lease.backend!r} backend could not take the run over from another "
        "replica (a local process can only be supervised by the replica that started it)"
    )
