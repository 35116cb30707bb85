"""The interface project backends implement (local now; docker, kubernetes and plugins later).

A backend is registered under a name (entry-point group ``mlgrid.project_backend``; the
built-in one is ``local``). The projects service fetches the project, validates the entry
point and parameters, creates the tracking run (tags, params) and then hands the submission to
the backend named by the request, which starts it and returns a :class:`SubmittedRun`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["RUN_STATUSES", "TERMINAL_STATUSES", "LogChunk", "ProjectBackend", "SubmittedRun"]

#: Status names a submitted run reports (MLflow's RunStatus names).
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
#: Statuses after which nothing changes any more.
TERMINAL_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})


@dataclass(frozen=True)
class LogChunk:
    """A piece of a run's output."""

    #: "stdout", "stderr" or "system" (messages of the runner: environment set-up, exit status).
    stream: str
    #: The bytes written.
    data: bytes
    #: When they were read, milliseconds since the epoch.
    timestamp: int


class SubmittedRun(ABC):
    """A run a backend has started; lets the caller follow and control it."""

    @property
    @abstractmethod
    def run_id(self) -> str:
        """The tracking run id."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the run ends (or ``timeout`` seconds pass); True when it FINISHED."""

    @abstractmethod
    def get_status(self) -> str:
        """One of :data:`RUN_STATUSES`."""

    @abstractmethod
    def cancel(self) -> None:
        """Stops the run; its status becomes KILLED unless it had already ended."""

    def logs(self, follow: bool = False) -> Iterator[LogChunk]:
        """The run's output so far (and, with ``follow``, live until it ends).

        Backends that keep no logs yield nothing.
        """
        return iter(())


class ProjectBackend(ABC):
    """Runs a project somewhere. Implementations must be constructible without arguments."""

    @abstractmethod
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
        """Starts ``entry_point`` of the project and returns without waiting for it to end.

        ``project_uri`` is a local working copy prepared for this run (fetched, ``#subdir``
        applied) when the projects service calls the backend; ``version`` the git commit it was
        taken from, if any. ``params`` are the user's values, not yet substituted. The run's
        child must log to ``tracking_uri`` into run ``run_id`` of ``experiment_id`` (the service
        creates the run; a backend called with ``run_id=None`` creates its own).
        ``backend_config`` is the user's configuration plus ``env_manager`` (resolved).
        """
