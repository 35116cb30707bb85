"""What a Job's and its pods' states mean for the run (documented API fields only).

A Job has ended when it carries a ``Complete`` or ``Failed`` condition with status "True"
(batch/v1 JobCondition). Until its pod's first container runs the run is SCHEDULED; a pod whose
container cannot start for a reason that will not cure itself (an image that cannot be pulled,
a missing Secret or ConfigMap) ends the run FAILED rather than leaving it SCHEDULED forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "STUCK_REASONS",
    "JobOutcome",
    "container_state",
    "job_outcome",
    "job_running",
    "pod_exit_code",
    "pod_has_output",
    "pod_stuck",
]

#: Waiting reasons of a container that mean it will not start without someone's help.
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
    }
)


@dataclass(frozen=True)
class JobOutcome:
    """How a Job ended."""

    #: "FINISHED" or "FAILED".
    status: str
    message: str = ""


def job_outcome(job: Any) -> JobOutcome | None:
    """The Job's end (None while it has not ended)."""
    status = getattr(job, "status", None)
    for condition in getattr(status, "conditions", None) or []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return JobOutcome("FINISHED")
        if condition.type == "Failed":
            detail = ": ".join(p for p in (condition.reason, condition.message) if p)
            return JobOutcome(
                "FAILED", f"the Job failed ({detail})" if detail else "the Job failed"
            )
    return None


def job_running(job: Any) -> bool:
    """True once a pod of the Job is ready (``status.ready``, Kubernetes 1.24 and later)."""
    status = getattr(job, "status", None)
    return bool(getattr(status, "ready", None))


def _first_status(pod: Any, container: str) -> Any:
    for status in getattr(pod.status, "container_statuses", None) or []:
        if status.name == container:
            return status
    return None


def container_state(pod: Any, container: str) -> str:
    """ "waiting", "running" or "terminated" for the pod's ``container`` ("waiting" if unknown)."""
    status = _first_status(pod, container)
    state = getattr(status, "state", None)
    if state is not None and state.terminated is not None:
        return "terminated"
    if state is not None and state.running is not None:
        return "running"
    return "waiting"


def pod_has_output(pod: Any, container: str) -> bool:
    """True once the container has started, so that its log can be read."""
    return container_state(pod, container) != "waiting" or pod.status.phase in (
        "Succeeded",
        "Failed",
    )


def pod_stuck(pod: Any, container: str) -> str | None:
    """Why the container cannot start (for the run's message), or None."""
    status = _first_status(pod, container)
    waiting = getattr(getattr(status, "state", None), "waiting", None)
    if waiting is None or waiting.reason not in STUCK_REASONS:
        return None
    detail = (waiting.message or "").strip()[:500]
    return f"pod {pod.metadata.name}: {waiting.reason}" + (f": {detail}" if detail else "")


def pod_exit_code(pod: Any, container: str) -> int | None:
    status = _first_status(pod, container)
    terminated = getattr(getattr(status, "state", None), "terminated", None)
    return None if terminated is None else int(terminated.exit_code)
