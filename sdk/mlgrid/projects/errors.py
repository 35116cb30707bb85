"""The error a project run raises when it cannot start or does not succeed."""

from __future__ import annotations

from mlgrid.exceptions import MlgridException

__all__ = ["ExecutionException"]


class ExecutionException(MlgridException):
    """A project run failed (non-zero exit, killed, environment not buildable), as in MLflow.

    Raised by synchronous :func:`mlgrid.projects.run` calls; carries the run id when one was
    created so the caller can look at its logs and tracking data.
    """

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id

    def __str__(self) -> str:
        return self.message
