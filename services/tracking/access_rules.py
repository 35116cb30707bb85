"""What each TrackingService call needs when auth is on (services/common/auth/policy.py).

Permissions are granted on experiments; a run, its metrics, params, tags, inputs and outputs,
and a logged model are checked on the experiment they belong to (MLflow's rule). Which
experiment a run or logged model belongs to never changes, so it is remembered after the first
lookup; a run or model that does not exist resolves to nothing and the call itself says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.common.auth.permissions import Permission, ResourceKind
from mlgrid_services.common.auth.policy import Rule, creates, edits, field, manages, reads, repeated

from .domain import TrackingDomain

EXPERIMENT = ResourceKind.EXPERIMENT
_SERVICE = pb.DESCRIPTOR.services_by_name["TrackingService"].full_name
_REMEMBERED = 200_000


class ExperimentOf:
    """run id / logged model id -> experiment id, remembered (it never changes)."""

    def __init__(self, domain: Callable[[], TrackingDomain]) -> None:
        self._domain = domain
        self._runs: dict[str, str] = {}
        self._models: dict[str, str] = {}
        self._lock = threading.Lock()

    def _remember(self, table: dict[str, str], key: str, value: str) -> str:
        with self._lock:
            if len(table) >= _REMEMBERED:
                table.clear()
            table[key] = value
        return value

    def run(self, run_id: str) -> str | None:
        found = self._runs.get(run_id)
        if found is not None:
            return found
        try:
            experiment_id = self._domain().get_run(run_id).info.experiment_id
        except ResourceDoesNotExist:
            return None
        return self._remember(self._runs, run_id, experiment_id)

    def model(self, model_id: str) -> str | None:
        found = self._models.get(model_id)
        if found is not None:
            return found
        try:
            experiment_id = self._domain().get_logged_model(model_id, True).info.experiment_id
        except ResourceDoesNotExist:
            return None
        return self._remember(self._models, model_id, experiment_id)

    def learn_run(self, _request: Any, response: Any) -> None:
        """A run just created: its experiment is in the answer (no lookup when it is used)."""
        info = response.run.info
        self._remember(self._runs, info.run_id, info.experiment_id)

    def learn_model(self, _request: Any, response: Any) -> None:
        info = response.model.info
        self._remember(self._models, info.model_id, info.experiment_id)

    def runs_of(self, name: str) -> Callable[[Any], Iterable[str]]:
        def ids(request: Any) -> Iterable[str]:
            values = getattr(request, name)
            run_ids = [values] if isinstance(values, str) else list(values)
            found = (self.run(r) for r in run_ids if r)
            return {e for e in found if e is not None}

        return ids

    def model_of(self, request: Any) -> Iterable[str]:
        found = self.model(request.model_id) if request.model_id else None
        return () if found is None else (found,)

    def named(self, request: Any) -> Iterable[str]:
        try:
            return (self._domain().get_experiment_by_name(request.experiment_name).experiment_id,)
        except ResourceDoesNotExist:
            return ()


def _keep_experiments(response: Any, readable: Callable[[Iterable[str]], set[str]]) -> Any:
    allowed = readable(e.experiment_id for e in response.experiments)
    kept = [e for e in response.experiments if e.experiment_id in allowed]
    del response.experiments[:]
    response.experiments.extend(kept)
    return response


def _keep_models(response: Any, readable: Callable[[Iterable[str]], set[str]]) -> Any:
    allowed = readable(m.info.experiment_id for m in response.models)
    kept = [m for m in response.models if m.info.experiment_id in allowed]
    del response.models[:]
    response.models.extend(kept)
    return response


def tracking_rules(domain: Callable[[], TrackingDomain]) -> dict[str, Rule]:
    """The rule of every TrackingService method."""
    of = ExperimentOf(domain)
    experiment = field("experiment_id")
    run = of.runs_of("run_id")
    rules: dict[str, Rule] = {
        "CreateExperiment": creates(EXPERIMENT, lambda _req, resp: resp.experiment_id),
        "GetExperiment": reads(EXPERIMENT, experiment),
        "GetExperimentByName": reads(EXPERIMENT, of.named),
        "SearchExperiments": Rule(kind=EXPERIMENT, filters=_keep_experiments),
        "UpdateExperiment": edits(EXPERIMENT, experiment),
        "DeleteExperiment": manages(EXPERIMENT, experiment),
        "RestoreExperiment": manages(EXPERIMENT, experiment),
        "SetExperimentTag": edits(EXPERIMENT, experiment),
        "DeleteExperimentTag": edits(EXPERIMENT, experiment),
        "CreateRun": replace(edits(EXPERIMENT, experiment), learns=of.learn_run),
        "GetRun": reads(EXPERIMENT, run),
        "UpdateRun": edits(EXPERIMENT, run),
        "DeleteRun": manages(EXPERIMENT, run),
        "RestoreRun": manages(EXPERIMENT, run),
        # Every experiment searched must be readable (runs come only from those).
        "SearchRuns": reads(EXPERIMENT, repeated("experiment_ids")),
        "SearchDatasets": reads(EXPERIMENT, repeated("experiment_ids")),
        "LogParam": edits(EXPERIMENT, run),
        "LogMetric": edits(EXPERIMENT, run),
        "SetTag": edits(EXPERIMENT, run),
        "DeleteTag": edits(EXPERIMENT, run),
        "LogBatch": edits(EXPERIMENT, run),
        "LogInputs": edits(EXPERIMENT, run),
        "IngestMetrics": edits(EXPERIMENT, run),
        "GetMetricHistory": reads(EXPERIMENT, run),
        "StreamMetricHistory": reads(EXPERIMENT, run),
        "GetMetricHistoryBulkInterval": reads(EXPERIMENT, of.runs_of("run_ids")),
        "LogOutputs": edits(EXPERIMENT, run),
        "CreateLoggedModel": replace(edits(EXPERIMENT, experiment), learns=of.learn_model),
        "FinalizeLoggedModel": edits(EXPERIMENT, of.model_of),
        "GetLoggedModel": reads(EXPERIMENT, of.model_of),
        "DeleteLoggedModel": manages(EXPERIMENT, of.model_of),
        # Named experiments must be readable; with none named, the results are cut.
        "SearchLoggedModels": Rule(
            kind=EXPERIMENT,
            needs=Permission.READ,
            ids=repeated("experiment_ids"),
            filters=_keep_models,
        ),
        "SetLoggedModelTags": edits(EXPERIMENT, of.model_of),
        "DeleteLoggedModelTag": edits(EXPERIMENT, of.model_of),
        "LogLoggedModelParams": edits(EXPERIMENT, of.model_of),
    }
    return {f"/{_SERVICE}/{name}": rule for name, rule in rules.items()}
