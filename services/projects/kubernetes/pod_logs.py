"""The run's pods, watched: their output copied into the run's log as it is written.

The pods are found by the run's label (the Job controller copies the template's labels to
them). Once a pod's container has started its log is followed (``follow=true``) until the
container ends; a pod the Job makes after a failure (``backoffLimit``) is followed in turn.
The same watch tells the run when its container runs and when it cannot start at all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ..logbuffer import LogBuffer
from .job_status import container_state, pod_exit_code, pod_has_output, pod_stuck
from .watching import ResourceWatch

__all__ = ["PodLogFollower"]

log = logging.getLogger(__name__)

_READ_BYTES = 64 * 1024
#: (connect, read) seconds of a log request; a run may print nothing for a long while.
_LOG_TIMEOUTS = (10.0, 24 * 3600.0)


def _created(pod: Any) -> str:
    stamp = pod.metadata.creation_timestamp
    return stamp.isoformat() if stamp is not None else ""


class PodLogFollower:
    """Follows the pods labelled ``selector`` in ``namespace`` until :meth:`finish`."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str,
        selector: str,
        container: str,
        output: LogBuffer,
        *,
        on_running: Callable[[], None],
        on_stuck: Callable[[str], None],
    ) -> None:
        self._core = k8s.CoreV1Api(api)
        self._namespace = namespace
        self._container = container
        self._output = output
        self._on_running = on_running
        self._on_stuck = on_stuck
        self._selector = selector
        self._watch = ResourceWatch(
            api, self._core.list_namespaced_pod, "V1Pod", namespace, label_selector=selector
        )
        self._followed: set[str] = set()
        self._followers: list[threading.Thread] = []
        self._responses: set[Any] = set()
        self._lock = threading.Lock()
        #: Exit code of the last pod whose container ended.
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, name="kube-pods", daemon=True)

    def start(self) -> PodLogFollower:
        self._thread.start()
        return self

    def finish(self, timeout: float) -> None:
        """Stops watching; follows the output of pods not seen running yet (a Job that ended
        before the watch saw its pod, or adopted after it ended); lets the log streams end
        (their containers have ended), and cuts whatever is still open after ``timeout``."""
        self._watch.stop()
        self._thread.join(timeout)
        self._catch_up()
        with self._lock:
            followers = list(self._followers)
        for follower in followers:
            follower.join(timeout)
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            with contextlib.suppress(Exception):
                if hasattr(response, "shutdown"):
                    response.shutdown()  # unblocks a read in another thread
                response.close()
        for follower in followers:
            follower.join(2.0)

    def _catch_up(self) -> None:
        try:
            listing = self._core.list_namespaced_pod(
                self._namespace, label_selector=self._selector, _request_timeout=30
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return  # the API server is gone: the output already copied is what there is
        for pod in sorted(listing.items, key=_created):
            self._look_at(pod)

    # -- the watch ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for change in self._watch.changes():
                pods = change.items if change.kind == "SYNC" else (change.item,)
                if change.kind == "DELETED":
                    continue
                for pod in sorted(pods, key=_created):
                    self._look_at(pod)
        except ApiException as exc:
            self._output.system(
                f"[mlgrid] cannot watch the run's pods: {exc.status} {exc.reason}\n"
            )
        except Exception:  # a bug here must not take the service down
            log.exception("pod watch of %s failed", self._namespace)

    def _look_at(self, pod: Any) -> None:
        name = pod.metadata.name
        state = container_state(pod, self._container)
        if state == "running":
            self._on_running()
        if state == "terminated":
            code = pod_exit_code(pod, self._container)
            if code is not None:
                self.exit_code = code
        stuck = pod_stuck(pod, self._container)
        if stuck is not None:
            self._on_stuck(stuck)
        if pod_has_output(pod, self._container):
            with self._lock:
                if name in self._followed:
                    return
                self._followed.add(name)
                follower = threading.Thread(
                    target=self._follow, args=(name,), name="kube-pod-log", daemon=True
                )
                self._followers.append(follower)
            follower.start()

    # -- one pod's log ------------------------------------------------------------------------

    def _follow(self, pod_name: str) -> None:
        try:
            response: Any = self._core.read_namespaced_pod_log(
                pod_name,
                self._namespace,
                container=self._container,
                follow=True,
                _preload_content=False,
                _request_timeout=_LOG_TIMEOUTS,
            )
        except ApiException as exc:
            self._output.system(
                f"[mlgrid] cannot read the log of pod {pod_name}: {exc.status} {exc.reason}\n"
            )
            return
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            self._output.system(f"[mlgrid] cannot read the log of pod {pod_name}: {exc}\n")
            return
        with self._lock:
            self._responses.add(response)
        try:
            for data in response.stream(_READ_BYTES, decode_content=True):
                self._output.append("stdout", data)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError):
            pass  # cut by finish(), or the connection dropped: the output so far is kept
        finally:
            with self._lock:
                self._responses.discard(response)
            with contextlib.suppress(Exception):
                response.release_conn()
