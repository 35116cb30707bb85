"""``dummy-backend``: a project backend whose runs finish at once."""

from __future__ import annotations

from typing import Any

from mlgrid.plugins import ProjectBackend, SubmittedRun


class DummySubmittedRun(SubmittedRun):
    """A run that has already finished successfully."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def get_status(self) -> str:
        return "FINISHED"

    def cancel(self) -> None:
        pass


class PluginDummyProjectBackend(ProjectBackend):
    """Runs nothing: every submitted run is FINISHED at once."""

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
        return DummySubmittedRun(run_id or "")
