"""What each ProjectsService call needs when auth is on (services/common/auth/policy.py).

A project run is a tracking run: submitting one needs EDIT on the experiment it goes to (by id,
by name, or the Default experiment "0"; with ``run_id``, that run's experiment), and watching,
following or cancelling one is checked on the experiment of its run, which the service asks
tracking about (through the gateway, as mlgrid's projects service) and remembers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.common.auth.permissions import ResourceKind
from mlgrid_services.common.auth.policy import UNOWNED, Rule, edits, reads

from .tracking_client import TrackingClient

EXPERIMENT = ResourceKind.EXPERIMENT
_SERVICE = pb.DESCRIPTOR.services_by_name["ProjectsService"].full_name
_REMEMBERED = 100_000


class ProjectRunExperiment:
    """A project run's (or a submission's) experiment id."""

    def __init__(self, tracking: TrackingClient) -> None:
        self._tracking = tracking
        self._runs: dict[str, str] = {}
        self._lock = threading.Lock()

    def run(self, request: Any) -> Iterable[str]:
        run_id = request.run_id
        if not run_id:
            return ()
        found = self._runs.get(run_id)
        if found is None:
            try:
                found = self._tracking.get_run(run_id).info.experiment_id
            except ResourceDoesNotExist:
                return ()
            with self._lock:
                if len(self._runs) >= _REMEMBERED:
                    self._runs.clear()
                self._runs[run_id] = found
        return (found,)

    def submission(self, request: Any) -> Iterable[str]:
        if request.run_id:
            return self.run(request)
        if request.experiment_id:
            return (request.experiment_id,)
        if request.experiment_name:
            try:
                return (self._tracking.resolve_existing(request.experiment_name),)
            except ResourceDoesNotExist:
                return (UNOWNED,)  # creating experiments through a submission: admins only
        return ("0",)


def projects_rules(tracking: TrackingClient) -> dict[str, Rule]:
    """The rule of every ProjectsService method."""
    of = ProjectRunExperiment(tracking)
    rules: dict[str, Rule] = {
        "SubmitRun": edits(EXPERIMENT, of.submission),
        "GetRunStatus": reads(EXPERIMENT, of.run),
        "WaitRun": reads(EXPERIMENT, of.run),
        "CancelRun": edits(EXPERIMENT, of.run),
        "StreamRunLogs": reads(EXPERIMENT, of.run),
    }
    return {f"/{_SERVICE}/{name}": rule for name, rule in rules.items()}
