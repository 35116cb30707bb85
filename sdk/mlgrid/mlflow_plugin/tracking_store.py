"""MLflow's tracking store for ``mlgrid://host:port``: each method is one call of mlgrid's SDK.

MLflow finds this class through the ``mlflow.tracking_store`` entry point and builds it with
``store_uri`` (and the ``artifact_uri`` of ``mlflow server --default-artifact-root``, which mlgrid
does not need: its own server chooses where artifacts go). Validation, limits and semantics are
mlgrid's; this class converts arguments and results and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.entities import (
    DatasetInput,
    Experiment,
    ExperimentTag,
    Metric,
    Param,
    Run,
    RunInfo,
    RunTag,
    ViewType,
)
from mlflow.entities import LoggedModelInput as MlflowLoggedModelInput
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.entities.metric import MetricWithRunId
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS

from mlgrid.client import Client
from mlgrid.entities import LoggedModelInput, RunStatus

from . import entities as convert
from .clients import client_for
from .errors import mlflow_errors
from .logged_models import LoggedModelMethods
from .uris import parse_store_uri, unwrap_artifact_uri


def _not_in_mlgrid(feature: str) -> MlflowException:
    return MlflowException(
        f"{feature} are not part of mlgrid (MLflow's GenAI features are out of its scope)",
        error_code=NOT_IMPLEMENTED,
    )


class MlgridTrackingStore(LoggedModelMethods, AbstractStore):
    """MLflow's tracking store interface over an mlgrid gateway."""

    @mlflow_errors
    def __init__(self, store_uri: str, artifact_uri: str | None = None, **_: Any) -> None:
        super().__init__()
        self._gateway = parse_store_uri(store_uri)
        self._client: Client = client_for(self._gateway)

    # -- experiments -----------------------------------------------------------------------

    @mlflow_errors
    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        page = self._client.search_experiments(
            view_type, max_results, filter_string, order_by, page_token
        )
        return PagedList([convert.experiment(self._gateway, e) for e in page], page.token)

    @mlflow_errors
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: list[ExperimentTag] | None = None,
    ) -> str:
        return self._client.create_experiment(
            name,
            unwrap_artifact_uri(artifact_location),
            {t.key: t.value for t in tags or []},
        )

    @mlflow_errors
    def get_experiment(self, experiment_id: str) -> Experiment:
        return convert.experiment(self._gateway, self._client.get_experiment(experiment_id))

    @mlflow_errors
    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        found = self._client.get_experiment_by_name(experiment_name)
        return None if found is None else convert.experiment(self._gateway, found)

    @mlflow_errors
    def delete_experiment(self, experiment_id: str) -> None:
        self._client.delete_experiment(experiment_id)

    @mlflow_errors
    def restore_experiment(self, experiment_id: str) -> None:
        self._client.restore_experiment(experiment_id)

    @mlflow_errors
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._client.rename_experiment(experiment_id, new_name)

    @mlflow_errors
    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        self._client.set_experiment_tag(experiment_id, tag.key, tag.value)

    @mlflow_errors
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._client.delete_experiment_tag(experiment_id, key)

    # -- runs ------------------------------------------------------------------------------

    @mlflow_errors
    def get_run(self, run_id: str) -> Run:
        return convert.run(self._gateway, self._client.get_run(run_id))

    @mlflow_errors
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: list[RunTag],
        run_name: str | None,
    ) -> Run:
        created = self._client.create_run(
            experiment_id,
            start_time=start_time,
            tags={t.key: t.value for t in tags or []},
            run_name=run_name,
            user_id=user_id,
        )
        return convert.run(self._gateway, created)

    @mlflow_errors
    def update_run_info(
        self, run_id: str, run_status: int | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        info = self._client.update_run(
            run_id,
            status=None if run_status is None else RunStatus.to_string(run_status),
            name=run_name,
            end_time=end_time,
        )
        return convert.run_info(self._gateway, info)

    @mlflow_errors
    def delete_run(self, run_id: str) -> None:
        self._client.delete_run(run_id)

    @mlflow_errors
    def restore_run(self, run_id: str) -> None:
        self._client.restore_run(run_id)

    @mlflow_errors
    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        page = self._client.search_runs(
            experiment_ids,
            filter_string or "",
            run_view_type,
            max_results,
            order_by,
            page_token,
        )
        return [convert.run(self._gateway, r) for r in page], page.token

    # -- logging ---------------------------------------------------------------------------

    @mlflow_errors
    def log_metric(self, run_id: str, metric: Metric) -> None:
        # One LogMetric, not a batch of one: the service merges concurrent LogMetric calls into
        # one statement (services/common/group_commit.py), which a batch's statement is not.
        self._client.log_metric(
            run_id,
            metric.key,
            metric.value,
            metric.timestamp,
            metric.step or 0,
            synchronous=True,
            dataset_name=metric.dataset_name,
            dataset_digest=metric.dataset_digest,
            model_id=metric.model_id,
        )

    @mlflow_errors
    def log_param(self, run_id: str, param: Param) -> None:
        self._client.log_param(run_id, param.key, param.value, synchronous=True)

    @mlflow_errors
    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self._client.set_tag(run_id, tag.key, tag.value, synchronous=True)

    @mlflow_errors
    def delete_tag(self, run_id: str, key: str) -> None:
        self._client.delete_tag(run_id, key)

    @mlflow_errors
    def log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        self._client.log_batch(
            run_id,
            metrics=convert.to_metrics(metrics),
            params=convert.to_params(params),
            tags=convert.to_tags(tags),
            synchronous=True,
        )

    @mlflow_errors
    def log_inputs(
        self,
        run_id: str,
        datasets: list[DatasetInput] | None = None,
        models: list[MlflowLoggedModelInput] | None = None,
    ) -> None:
        self._client.log_inputs(
            run_id,
            [convert.to_dataset_input(d) for d in datasets or []],
            [LoggedModelInput(m.model_id) for m in models or []],
        )

    @mlflow_errors
    def _search_datasets(self, experiment_ids: list[str]) -> list[_DatasetSummary]:
        # Private in MLflow too: its server's experiments/search-datasets (the UI's dataset
        # filter) calls it on stores that have it.
        return [
            _DatasetSummary(s.experiment_id, s.name, s.digest, s.context)
            for s in self._client.search_datasets(experiment_ids)
        ]

    @mlflow_errors
    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        # MLflow's model history tag: a JSON list with one entry per model logged to the run.
        history = self._client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_MODELS)
        entries = json.loads(history) if history else []
        entries.append(mlflow_model.get_tags_dict())
        self._client.set_tag(run_id, MLFLOW_LOGGED_MODELS, json.dumps(entries), synchronous=True)

    # -- metric history --------------------------------------------------------------------

    @mlflow_errors
    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        if max_results is None and page_token is None:
            points: list[Metric] = []
            for columns in self._client.iter_metric_history_columns(run_id, metric_key):
                points.extend(convert.metrics_of_columns(metric_key, columns))
            return PagedList(points, None)
        page = self._client.get_metric_history_page(
            run_id, metric_key, max_results or 0, page_token
        )
        return PagedList([convert.metric(p) for p in page], page.token)

    @mlflow_errors
    def get_metric_history_bulk_interval(
        self,
        run_ids: list[str],
        metric_key: str,
        max_results: int,
        start_step: int | None,
        end_step: int | None,
    ) -> list[MetricWithRunId]:
        points = self._client.get_metric_history_bulk_interval(
            run_ids, metric_key, start_step, end_step, max_results
        )
        return [MetricWithRunId(convert.metric(p), p.run_id or "") for p in points]

    # -- outside mlgrid's scope ------------------------------------------------------------

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        raise _not_in_mlgrid("traces")
