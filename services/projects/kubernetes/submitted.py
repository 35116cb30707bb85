"""One run on Kubernetes: its Job watched to the end, its pods' output, cancel, and the end.

A supervisor thread per run (so the run outlives the client that submitted it) first launches
the Job (the image is built and pushed meanwhile: the run is SCHEDULED), then watches it: the
run is RUNNING once its container runs, and FINISHED or FAILED with the Job's ``Complete`` or
``Failed`` condition. A container that cannot start (an image that cannot be pulled) fails the
run and its Job is deleted. Cancel deletes the Job and its pods (KILLED). When the run ends its
output is saved as the run's artifact ``kubernetes-job.log`` and the tracking run is ended.

When the projects service stops, runs whose Job exists are left running in the cluster (their
record stays): the next service instance adopts them (see ``backend.KubernetesBackend.recover``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import LogChunk, SubmittedRun

from ..logbuffer import LogBuffer
from .cluster import Cluster
from .job_status import JobOutcome, job_outcome, job_running
from .pod_logs import PodLogFollower
from .run_secret import delete_secret
from .template import RUN_ID_LABEL
from .watching import ResourceWatch

__all__ = ["LOG_ARTIFACT", "JobHandle", "KubernetesSubmittedRun", "RunHooks"]

log = logging.getLogger(__name__)

#: Artifact path of the run's output, saved when the run ends.
LOG_ARTIFACT = "kubernetes-job.log"
_TRACKING_STATUS = {
    "FINISHED": tracking_pb2.RUN_STATUS_FINISHED,
    "FAILED": tracking_pb2.RUN_STATUS_FAILED,
    "KILLED": tracking_pb2.RUN_STATUS_KILLED,
}
#: Seconds the pods' log streams get to end after the Job has ended.
_LOG_DRAIN_SECONDS = 30.0


@dataclass(frozen=True)
class JobHandle:
    """Where a run's Job lives; recorded so that a restarted service finds it again."""

    #: The kube context (None: the current context, else the in-cluster account).
    context: str | None
    namespace: str
    job_name: str
    #: The first container's name (whose log is the run's output).
    container: str
    store_uri: str | None = None
    #: The Secret holding the run's credential (auth on; run_secret.py), deleted when it ends.
    secret: str | None = None

    def details(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> JobHandle:
        return cls(**{k: details.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass
class RunHooks:
    """What a run needs from the projects service."""

    #: Ends the tracking run unless it ended already: (run_id, tracking status, store_uri).
    end_run: Callable[[str, int, str | None], None]
    #: Records the Job of a run (for a restarted service): (run_id, handle).
    record: Callable[[str, JobHandle], None]
    #: Drops the record of an ended run.
    forget: Callable[[str], None]
    #: Saves bytes as an artifact of the run: (run_id, store_uri, path, data).
    save_artifact: Callable[[str, str | None, str, bytes], None]


class KubernetesSubmittedRun(SubmittedRun):
    """A run whose project runs as a Kubernetes Job."""

    def __init__(
        self,
        run_id: str,
        cluster: Cluster,
        hooks: RunHooks,
        output: LogBuffer,
        *,
        launch: Callable[[KubernetesSubmittedRun], JobHandle] | None = None,
        handle: JobHandle | None = None,
        store_uri: str | None = None,
    ) -> None:
        assert (launch is None) != (handle is None), "give launch (a new run) or handle"
        self._run_id = run_id
        self.cluster = cluster
        self.hooks = hooks
        self.log = output
        self._launch = launch
        self.handle = handle
        self.store_uri = handle.store_uri if handle else store_uri
        self._status = "SCHEDULED"
        self.exit_code: int | None = None
        self.message = ""
        self._outcome: JobOutcome | None = None
        self._cancelled = False
        self._detached = False
        self._jobs: ResourceWatch | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name=f"kube-run-{run_id[:8]}", daemon=True
        )

    def start(self) -> KubernetesSubmittedRun:
        self._thread.start()
        return self

    # -- SubmittedRun ---------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    def get_status(self) -> str:
        return self._status

    @property
    def cancelled(self) -> bool:
        """True once a cancel (or the service's stop) has asked the run to end."""
        return self._cancelled

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        return self._status == "FINISHED"

    def logs(self, follow: bool = False) -> Iterator[LogChunk]:
        position = 0
        while True:
            entries, position, complete = self.log.read(position, wait=1.0 if follow else 0.0)
            for entry in entries:
                yield LogChunk(entry.stream, entry.data, entry.timestamp)
            if complete or not follow:
                return
            if not entries:
                yield LogChunk("system", b"", 0)  # a heartbeat: lets the server see a gone client

    def cancel(self) -> None:
        """Deletes the Job and its pods; the run ends KILLED (unless it had ended)."""
        with self._lock:
            if self._done.is_set() or self._outcome is not None:
                handle = None
            else:
                self._cancelled = True
                handle = self.handle
                self.log.system("[mlgrid] cancel requested: deleting the Job and its pods\n")
        if handle is not None:
            self._delete_job(handle)
        self._stop_watching()
        self._done.wait(60)

    def abort(self, reason: str) -> None:
        """The service stops: a launched Job goes on in the cluster and is adopted by the next
        service instance; a run still being prepared ends FAILED with ``reason``."""
        with self._lock:
            if self._done.is_set():
                return
            if self.handle is None:
                self._cancelled = True
                self._outcome = JobOutcome("FAILED", reason)
            else:
                self._detached = True
        self._stop_watching()
        self._done.wait(30)

    # -- supervision ----------------------------------------------------------------------------

    def _supervise(self) -> None:
        outcome = JobOutcome("FAILED", "")
        try:
            if self.handle is None:
                assert self._launch is not None
                handle = self._launch(self)
                with self._lock:
                    self.handle = handle
                    cancelled = self._cancelled
                self.hooks.record(self.run_id, handle)
                if cancelled:
                    self._delete_job(handle)
            outcome = self._follow(self.handle)
        except InvalidParameterValue as exc:
            outcome = JobOutcome("FAILED", exc.message)
        except Exception as exc:  # a bug must still end the run, not leave it RUNNING
            log.exception("kubernetes run %s failed", self.run_id)
            outcome = JobOutcome("FAILED", f"{type(exc).__name__}: {exc}")
        with self._lock:
            if self._outcome is not None:
                outcome = self._outcome
            elif self._cancelled:
                outcome = JobOutcome("KILLED", "cancelled")
            detached = self._detached and self._outcome is None
        if detached:
            self.log.system("[mlgrid] the projects service stops; the Job goes on in the cluster\n")
            self.log.close()
            self.cluster.close()
            self._done.set()
            return
        self._finish(outcome)

    def _stop_watching(self) -> None:
        with self._lock:
            jobs = self._jobs
        if jobs is not None:
            jobs.stop()

    def _mark_running(self) -> None:
        with self._lock:
            if self._status == "SCHEDULED" and self._outcome is None:
                self._status = "RUNNING"

    def _stuck(self, reason: str) -> None:
        """The container cannot start: the run fails and its Job is deleted."""
        with self._lock:
            if self._outcome is not None or self._cancelled:
                return
            self._outcome = JobOutcome("FAILED", reason)
        self._stop_watching()

    def _follow(self, handle: JobHandle | None) -> JobOutcome:
        assert handle is not None
        batch = k8s.BatchV1Api(self.cluster.api)
        pods = PodLogFollower(
            self.cluster.api,
            handle.namespace,
            f"{RUN_ID_LABEL}={self.run_id}",
            handle.container,
            self.log,
            on_running=self._mark_running,
            on_stuck=self._stuck,
        ).start()
        jobs = ResourceWatch(
            self.cluster.api,
            batch.list_namespaced_job,
            "V1Job",
            handle.namespace,
            field_selector=f"metadata.name={handle.job_name}",
        )
        with self._lock:
            self._jobs = jobs
            stop_now = self._outcome is not None or self._detached or self._cancelled
        if stop_now:
            jobs.stop()
        outcome: JobOutcome | None = None
        try:
            for change in jobs.changes():
                if change.kind == "SYNC":
                    job = change.items[0] if change.items else None
                else:
                    job = None if change.kind == "DELETED" else change.item
                if job is None:
                    outcome = JobOutcome("FAILED", f"the Job {handle.job_name} was deleted")
                    break
                if job_running(job):
                    self._mark_running()
                outcome = job_outcome(job)
                if outcome is not None:
                    break
        finally:
            jobs.stop()
        with self._lock:
            decided = self._outcome
            if decided is None and outcome is not None and not self._cancelled:
                # Decided now: a cancel arriving while the output drains changes nothing.
                self._outcome = outcome
            detached = self._detached
        if decided is not None and decided.status == "FAILED" and not detached:
            self._delete_job(handle)  # a container that cannot start: nothing left behind
        pods.finish(_LOG_DRAIN_SECONDS if not detached else 1.0)
        self.exit_code = pods.exit_code
        result = decided or outcome or JobOutcome("FAILED", "")
        if result.status == "FAILED" and self.exit_code not in (None, 0):
            result = JobOutcome("FAILED", f"exit code {self.exit_code}; {result.message}")
            with self._lock:
                if self._outcome is not None:
                    self._outcome = result
        return result

    def _delete_job(self, handle: JobHandle) -> None:
        """Deletes the Job and its pods (propagation Background: a Job deleted through the API
        would otherwise orphan its pods); the pods are also deleted directly, so none is left
        running while the garbage collector catches up."""
        batch = k8s.BatchV1Api(self.cluster.api)
        core = k8s.CoreV1Api(self.cluster.api)
        try:
            batch.delete_namespaced_job(
                handle.job_name,
                handle.namespace,
                propagation_policy="Background",
                _request_timeout=30,
            )
        except ApiException as exc:
            if exc.status != 404:
                self.log.system(f"[mlgrid] could not delete the Job: {exc.status} {exc.reason}\n")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self.log.system(f"[mlgrid] could not delete the Job: {exc}\n")
        try:
            pods = core.list_namespaced_pod(
                handle.namespace,
                label_selector=f"{RUN_ID_LABEL}={self.run_id}",
                _request_timeout=30,
            )
            for pod in pods.items:
                name = pod.metadata.name if pod.metadata else None
                if not name:
                    continue
                try:
                    core.delete_namespaced_pod(name, handle.namespace, _request_timeout=30)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            self.log.system(f"[mlgrid] could not delete the run's pods: {exc}\n")

    def _delete_secret(self, handle: JobHandle) -> None:
        """The run's token is revoked as the run ends: its Secret goes too (the Job, kept for
        its ttlSecondsAfterFinished, does not need it any more)."""
        if handle.secret:
            problem = delete_secret(self.cluster, handle.namespace, handle.secret)
            if problem:
                self.log.system(f"[mlgrid] could not delete the run's Secret: {problem}\n")

    def _finish(self, outcome: JobOutcome) -> None:
        status, self.message = outcome.status, outcome.message
        if status != "FINISHED" and self.message:
            self.log.system(f"[mlgrid] {self.message}\n")
        self.log.system(f"[mlgrid] run {self.run_id} {status}\n")
        if self.handle is not None:
            self._save_output()
            self._delete_secret(self.handle)
        try:
            self.hooks.end_run(self.run_id, _TRACKING_STATUS[status], self.store_uri)
        except Exception as exc:  # tracking down: the run's own status is still reported
            log.warning("could not end tracking run %s: %s", self.run_id, exc)
            self.log.system(f"[mlgrid] could not update the tracking run: {exc}\n")
        self.hooks.forget(self.run_id)
        self.cluster.close()
        self._status = status
        self.log.close()
        self._done.set()

    def _save_output(self) -> None:
        entries, _, _ = self.log.read(0)
        data = b"".join(entry.data for entry in entries)
        try:
            self.hooks.save_artifact(self.run_id, self.store_uri, LOG_ARTIFACT, data)
        except Exception as exc:
            log.warning("could not save the log of run %s: %s", self.run_id, exc)
            self.log.system(f"[mlgrid] could not save {LOG_ARTIFACT} as an artifact: {exc}\n")
