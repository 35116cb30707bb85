"""The typed client: MLflow's ``MlflowClient`` method names and signatures over gRPC.

Each method builds one request, calls the tracking service through the transport (errors come
back as typed exceptions from :mod:`mlgrid.exceptions`) and returns domain objects from
:mod:`mlgrid.entities`. Artifact, registry and logged-model methods come from the parts their areas own
(:mod:`mlgrid.delegation`).
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

import grpc

from mlgrid import environment as env
from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as rpc
from mlgrid.artifacts.client import ArtifactsClient
from mlgrid.async_logging import AsyncLogger, RunOperations
from mlgrid.batching import add_metrics, batch_requests, split_batch
from mlgrid.context.default import current_user
from mlgrid.context.tags import MLFLOW_PARENT_RUN_ID, MLFLOW_USER
from mlgrid.delegation import Delegated
from mlgrid.entities import (
    DatasetInput,
    DatasetSummary,
    Experiment,
    LoggedModelInput,
    Metric,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.limits import MAX_PARAM_VALUE_LENGTH, MAX_RUN_TAG_VALUE_LENGTH, SEARCH_RUNS_DEFAULT
from mlgrid.logged_models_client import LoggedModelsClient
from mlgrid.registry.client import RegistryClient
from mlgrid.tracking_uri import get_tracking_transport
from mlgrid.transport import Transport

__all__ = ["Client", "MlflowClient", "split_batch"]  # split_batch: from mlgrid.batching


def _now_ms() -> int:
    return int(time.time() * 1000)


def _metric_value(key: str, value: Any) -> float:
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return float(value)  # type: ignore[arg-type]
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(
            f"metric {key!r} got value {value!r} of type {type(value).__name__}; "
            "a metric value must be a number"
        ) from None


def _truncate(kind: str, key: str, value: Any, limit: int) -> str:
    text = str(value)
    if len(text) > limit:
        warnings.warn(
            f"{kind} {key!r}: value of {len(text)} characters truncated to {limit}",
            stacklevel=4,
        )
        return text[:limit]
    return text


def _history_columns(points: Sequence[Metric] | Sequence[Any]) -> rpc.MetricHistoryColumns:
    """Points (entities or messages) as the columns a columnar history chunk carries."""
    return rpc.MetricHistoryColumns(
        steps=[p.step for p in points],
        timestamps=[p.timestamp for p in points],
        values=[p.value for p in points],
    )


class Client:
    """Client of a tracking server (``grpc://``) or an embedded store (``sqlite:///``, ...).

    Tracking calls are its own methods; artifact, registry and logged-model calls live in the
    parts ``client.artifacts``, ``client.registry`` and ``client.logged_models`` (each built from
    the same transport) and are exposed here under MlflowClient's names.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        *,
        transport: Transport | None = None,
    ) -> None:
        """``transport``: calls go through this one instead of the process's shared transport
        for the URIs (a caller that manages its own channels, or looks inside them)."""
        self._transport: Transport = transport or get_tracking_transport(tracking_uri, registry_uri)
        self._tracking_uri = self._transport.tracking_uri
        self._registry_uri = registry_uri or self._transport.registry_uri or self._tracking_uri
        self._async_logger: AsyncLogger | None = None
        self.artifacts = ArtifactsClient(self._transport, self._artifact_root_of_run)
        self.registry = RegistryClient(self._transport)
        self.logged_models = LoggedModelsClient(self._transport)

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    def _call(self, method: Any, request: Any) -> Any:
        return self._transport.call(method, request)

    @property
    def _stub(self) -> Any:
        return self._transport.tracking

    def _artifact_root_of_run(self, run_id: str) -> str:
        return str(self.get_run(run_id).info.artifact_uri)

    # -- artifacts (ArtifactsClient) -------------------------------------------

    log_artifact = Delegated("artifacts", ArtifactsClient.log_artifact)
    log_artifacts = Delegated("artifacts", ArtifactsClient.log_artifacts)
    list_artifacts = Delegated("artifacts", ArtifactsClient.list_artifacts)
    download_artifacts = Delegated("artifacts", ArtifactsClient.download_artifacts)
    log_text = Delegated("artifacts", ArtifactsClient.log_text)
    log_dict = Delegated("artifacts", ArtifactsClient.log_dict)
    log_figure = Delegated("artifacts", ArtifactsClient.log_figure)
    log_image = Delegated("artifacts", ArtifactsClient.log_image)
    log_artifact_at = Delegated("artifacts", ArtifactsClient.log_artifact_at)
    log_artifacts_at = Delegated("artifacts", ArtifactsClient.log_artifacts_at)
    log_bytes_at = Delegated("artifacts", ArtifactsClient.log_bytes_at)
    list_artifacts_at = Delegated("artifacts", ArtifactsClient.list_artifacts_at)
    download_artifacts_at = Delegated("artifacts", ArtifactsClient.download_artifacts_at)
    read_artifact_at = Delegated("artifacts", ArtifactsClient.read_artifact_at)
    delete_artifacts_at = Delegated("artifacts", ArtifactsClient.delete_artifacts_at)
    get_presigned_url_at = Delegated("artifacts", ArtifactsClient.get_presigned_url_at)

    # -- registry (RegistryClient) ---------------------------------------------

    create_registered_model = Delegated("registry", RegistryClient.create_registered_model)
    get_registered_model = Delegated("registry", RegistryClient.get_registered_model)
    rename_registered_model = Delegated("registry", RegistryClient.rename_registered_model)
    update_registered_model = Delegated("registry", RegistryClient.update_registered_model)
    delete_registered_model = Delegated("registry", RegistryClient.delete_registered_model)
    search_registered_models = Delegated("registry", RegistryClient.search_registered_models)
    get_latest_versions = Delegated("registry", RegistryClient.get_latest_versions)
    set_registered_model_tag = Delegated("registry", RegistryClient.set_registered_model_tag)
    delete_registered_model_tag = Delegated("registry", RegistryClient.delete_registered_model_tag)
    create_model_version = Delegated("registry", RegistryClient.create_model_version)
    get_model_version = Delegated("registry", RegistryClient.get_model_version)
    update_model_version = Delegated("registry", RegistryClient.update_model_version)
    delete_model_version = Delegated("registry", RegistryClient.delete_model_version)
    search_model_versions = Delegated("registry", RegistryClient.search_model_versions)
    transition_model_version_stage = Delegated(
        "registry", RegistryClient.transition_model_version_stage
    )
    set_model_version_tag = Delegated("registry", RegistryClient.set_model_version_tag)
    delete_model_version_tag = Delegated("registry", RegistryClient.delete_model_version_tag)
    get_model_version_download_uri = Delegated(
        "registry", RegistryClient.get_model_version_download_uri
    )
    set_registered_model_alias = Delegated("registry", RegistryClient.set_registered_model_alias)
    delete_registered_model_alias = Delegated(
        "registry", RegistryClient.delete_registered_model_alias
    )
    get_model_version_by_alias = Delegated("registry", RegistryClient.get_model_version_by_alias)

    # -- logged_models (LoggedModelsClient) ------------------------------------

    create_logged_model = Delegated("logged_models", LoggedModelsClient.create_logged_model)
    finalize_logged_model = Delegated("logged_models", LoggedModelsClient.finalize_logged_model)
    get_logged_model = Delegated("logged_models", LoggedModelsClient.get_logged_model)
    delete_logged_model = Delegated("logged_models", LoggedModelsClient.delete_logged_model)
    search_logged_models = Delegated("logged_models", LoggedModelsClient.search_logged_models)
    set_logged_model_tags = Delegated("logged_models", LoggedModelsClient.set_logged_model_tags)
    delete_logged_model_tag = Delegated("logged_models", LoggedModelsClient.delete_logged_model_tag)
    log_model_params = Delegated("logged_models", LoggedModelsClient.log_model_params)
    log_outputs = Delegated("logged_models", LoggedModelsClient.log_outputs)

    # -- experiments ------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Creates an experiment and returns its id."""
        request = rpc.CreateExperimentRequest(
            name=name,
            artifact_location=artifact_location or "",
            tags=[common_pb2.Tag(key=k, value=str(v)) for k, v in (tags or {}).items()],
        )
        response = self._call(self._stub.CreateExperiment, request)
        return str(response.experiment_id)

    def get_experiment(self, experiment_id: str) -> Experiment:
        request = rpc.GetExperimentRequest(experiment_id=str(experiment_id))
        return Experiment.from_proto(self._call(self._stub.GetExperiment, request).experiment)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name`` (the active one first), or None."""
        request = rpc.GetExperimentByNameRequest(experiment_name=name)
        try:
            response = self._call(self._stub.GetExperimentByName, request)
        except ResourceDoesNotExist:
            return None
        return Experiment.from_proto(response.experiment)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int | None = SEARCH_RUNS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        request = rpc.SearchExperimentsRequest(
            max_results=max_results or 0,
            page_token=page_token or "",
            filter=filter_string or "",
            order_by=order_by or [],
            view_type=ViewType.to_proto(view_type),
        )
        response = self._call(self._stub.SearchExperiments, request)
        return PagedList(
            [Experiment.from_proto(e) for e in response.experiments], response.next_page_token
        )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        request = rpc.UpdateExperimentRequest(experiment_id=str(experiment_id), new_name=new_name)
        self._call(self._stub.UpdateExperiment, request)

    def delete_experiment(self, experiment_id: str) -> None:
        request = rpc.DeleteExperimentRequest(experiment_id=str(experiment_id))
        self._call(self._stub.DeleteExperiment, request)

    def restore_experiment(self, experiment_id: str) -> None:
        request = rpc.RestoreExperimentRequest(experiment_id=str(experiment_id))
        self._call(self._stub.RestoreExperiment, request)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        request = rpc.SetExperimentTagRequest(
            experiment_id=str(experiment_id), key=key, value=str(value)
        )
        self._call(self._stub.SetExperimentTag, request)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        request = rpc.DeleteExperimentTagRequest(experiment_id=str(experiment_id), key=key)
        self._call(self._stub.DeleteExperimentTag, request)

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        *,
        user_id: str | None = None,
    ) -> Run:
        """Creates a RUNNING run. ``tags`` are set as given (no context tags are added here;
        the fluent ``start_run`` adds them, as in MLflow). ``user_id`` defaults to the
        ``mlflow.user`` tag, else the current user."""
        tags = {
            k: _truncate("tag", k, v, MAX_RUN_TAG_VALUE_LENGTH) for k, v in (tags or {}).items()
        }
        request = rpc.CreateRunRequest(
            experiment_id=str(experiment_id),
            user_id=user_id or tags.get(MLFLOW_USER) or current_user(),
            start_time=start_time or _now_ms(),
            tags=[common_pb2.Tag(key=k, value=v) for k, v in tags.items()],
            run_name=run_name or "",
        )
        return Run.from_proto(self._call(self._stub.CreateRun, request).run)

    def get_run(self, run_id: str) -> Run:
        return Run.from_proto(self._call(self._stub.GetRun, rpc.GetRunRequest(run_id=run_id)).run)

    def get_parent_run(self, run_id: str) -> Run | None:
        """The run named by ``run_id``'s ``mlflow.parentRunId`` tag, or None."""
        parent_id = self.get_run(run_id).data.tags.get(MLFLOW_PARENT_RUN_ID)
        return self.get_run(parent_id) if parent_id else None

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        name: str | None = None,
        *,
        end_time: int | None = None,
    ) -> RunInfo:
        """Changes a run's status, name and/or end time. A terminal status without an
        ``end_time`` ends the run now."""
        request = rpc.UpdateRunRequest(run_id=run_id, run_name=name or "")
        if status is not None:
            request.status = RunStatus.to_proto(status)
            if RunStatus.is_terminated(status) and end_time is None:
                request.end_time = _now_ms()
        if end_time is not None:
            request.end_time = end_time
        response = self._call(self._stub.UpdateRun, request)
        return RunInfo.from_proto(response.run_info)

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        """Ends a run: ``status`` (default FINISHED) and ``end_time`` (default now)."""
        request = rpc.UpdateRunRequest(
            run_id=run_id,
            status=RunStatus.to_proto(status or "FINISHED"),
            end_time=end_time or _now_ms(),
        )
        self._call(self._stub.UpdateRun, request)

    def delete_run(self, run_id: str) -> None:
        self._call(self._stub.DeleteRun, rpc.DeleteRunRequest(run_id=run_id))

    def restore_run(self, run_id: str) -> None:
        self._call(self._stub.RestoreRun, rpc.RestoreRunRequest(run_id=run_id))

    def search_runs(
        self,
        experiment_ids: str | Sequence[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_RUNS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        if isinstance(experiment_ids, str | int):
            experiment_ids = [str(experiment_ids)]
        request = rpc.SearchRunsRequest(
            experiment_ids=[str(e) for e in experiment_ids],
            filter=filter_string or "",
            run_view_type=ViewType.to_proto(run_view_type),
            max_results=max_results,
            order_by=order_by or [],
            page_token=page_token or "",
        )
        response = self._call(self._stub.SearchRuns, request)
        return PagedList([Run.from_proto(r) for r in response.runs], response.next_page_token)

    # -- logging ----------------------------------------------------------------------------

    def _async(self, synchronous: bool | None) -> bool:
        if synchronous is None:
            return env.MLGRID_ASYNC_LOGGING.get()
        return not synchronous

    @property
    def async_logger(self) -> AsyncLogger:
        """The background logger of this client (created on first asynchronous call)."""
        if self._async_logger is None:
            self._async_logger = AsyncLogger(self._log_batch_now)
        return self._async_logger

    def flush_async_logging(self) -> None:
        """Waits for queued logging; raises failures that were not reported yet."""
        if self._async_logger is not None:
            self._async_logger.flush()

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        """Logs a param; returns ``value`` (or a RunOperations when not synchronous)."""
        text = _truncate("param", key, value, MAX_PARAM_VALUE_LENGTH)
        if self._async(synchronous):
            return self.async_logger.log(run_id, params=[Param(key, text)])
        self._transport.call_tracking_write(
            "LogParam", rpc.LogParamRequest(run_id=run_id, key=key, value=text)
        )
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool | None = None,
        dataset_name: str | None = None,
        dataset_digest: str | None = None,
        model_id: str | None = None,
    ) -> RunOperations | None:
        """Logs one metric point (timestamp default now, step default 0). With ``model_id``
        (MLflow 3) the point is also linked to that logged model, with the dataset it was
        computed on."""
        metric = Metric(
            key,
            _metric_value(key, value),
            # As MLflow's client: only a missing timestamp or step is filled in (0 is kept).
            _now_ms() if timestamp is None else timestamp,
            0 if step is None else step,
            model_id=model_id or None,
            dataset_name=dataset_name or None,
            dataset_digest=dataset_digest or None,
        )
        if self._async(synchronous):
            return self.async_logger.log(run_id, metrics=[metric])
        request = rpc.LogMetricRequest(
            run_id=run_id,
            key=key,
            value=metric.value,
            timestamp=metric.timestamp,
            step=metric.step,
            model_id=model_id or "",
            dataset_name=dataset_name or "",
            dataset_digest=dataset_digest or "",
        )
        self._transport.call_tracking_write("LogMetric", request)
        return None

    def set_tag(
        self, run_id: str, key: str, value: Any, synchronous: bool | None = None
    ) -> RunOperations | None:
        text = _truncate("tag", key, value, MAX_RUN_TAG_VALUE_LENGTH)
        if self._async(synchronous):
            return self.async_logger.log(run_id, tags=[RunTag(key, text)])
        self._transport.call_tracking_write(
            "SetTag", rpc.SetTagRequest(run_id=run_id, key=key, value=text)
        )
        return None

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call(self._stub.DeleteTag, rpc.DeleteTagRequest(run_id=run_id, key=key))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool | None = None,
    ) -> RunOperations | None:
        """Logs metrics, params and tags. Batches above the server's limits (1000 metrics,
        100 params, 100 tags, 1000 in all) are sent as several calls, params and tags first;
        each call is atomic, the whole is not."""
        params = [
            Param(p.key, _truncate("param", p.key, p.value, MAX_PARAM_VALUE_LENGTH)) for p in params
        ]
        tags = [
            RunTag(t.key, _truncate("tag", t.key, t.value, MAX_RUN_TAG_VALUE_LENGTH)) for t in tags
        ]
        if self._async(synchronous):
            return self.async_logger.log(run_id, list(metrics), params, tags)
        self._log_batch_now(run_id, metrics, params, tags)
        return None

    def _log_batch_now(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
    ) -> None:
        for request, chunk_metrics in batch_requests(run_id, metrics, params, tags):
            response = self._transport.call_tracking_write("LogBatch", request)
            if request.HasField("metric_columns") and response.metrics_received == 0:
                # A server that predates metric_columns ignored them: send messages instead
                # (its params and tags are written again, with the same values: no change).
                request.ClearField("metric_columns")
                add_metrics(request, [m for m in chunk_metrics if not m.model_id])
                self._transport.call_tracking_write("LogBatch", request)

    def log_inputs(
        self,
        run_id: str,
        datasets: Sequence[DatasetInput] | None = None,
        models: Sequence[LoggedModelInput] | None = None,
    ) -> None:
        """Records datasets and (MLflow 3) logged models the run used."""
        request = rpc.LogInputsRequest(
            run_id=run_id,
            datasets=[d.to_proto() for d in datasets or []],
            models=[m.to_proto() for m in models or []],
        )
        self._call(self._stub.LogInputs, request)

    def search_datasets(self, experiment_ids: Sequence[str]) -> list[DatasetSummary]:
        """The distinct datasets (with their ``mlflow.data.context``) that the runs of 1 to 20
        experiments used; at most 1,000."""
        request = rpc.SearchDatasetsRequest(experiment_ids=[str(e) for e in experiment_ids])
        response = self._call(self._stub.SearchDatasets, request)
        return [DatasetSummary.from_proto(s) for s in response.dataset_summaries]

    # -- metric history ---------------------------------------------------------------------

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of metric ``key``, ordered by (step, timestamp), streamed in chunks."""
        points: list[Metric] = []
        for columns in self.iter_metric_history_columns(run_id, key):
            steps = columns.steps
            points.extend(
                map(Metric, repeat(key, len(steps)), columns.values, columns.timestamps, steps)
            )
        return points

    def iter_metric_history_columns(
        self, run_id: str, key: str
    ) -> Iterator[rpc.MetricHistoryColumns]:
        """Every point of metric ``key``, ordered by (step, timestamp), as chunks of columns:
        point i of a chunk is ``(steps[i], timestamps[i], values[i])``. The cheapest way to read
        a long history (to plot or aggregate it): no object per point is built."""
        request = rpc.StreamMetricHistoryRequest(run_id=run_id, metric_key=key, columnar=True)
        try:
            chunks = self._stub.StreamMetricHistory(request, metadata=self._transport.metadata())
            for chunk in chunks:
                if chunk.metrics:  # a server that predates `columnar` sends a message per point
                    yield _history_columns(chunk.metrics)
                else:
                    yield chunk.columns
            return
        except grpc.RpcError as err:
            # A plugin backend may serve only the paged call; the answer is the same.
            if not (isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.UNIMPLEMENTED):
                raise from_rpc_error(err) from None
        token: str | None = None
        while True:
            page = self.get_metric_history_page(run_id, key, 25_000, token)
            yield _history_columns(page)
            token = page.token
            if not token:
                return

    def get_metric_history_page(
        self, run_id: str, key: str, max_results: int = 0, page_token: str | None = None
    ) -> PagedList[Metric]:
        """One page of a metric's history (``max_results`` 0 = everything)."""
        request = rpc.GetMetricHistoryRequest(
            run_id=run_id, metric_key=key, max_results=max_results, page_token=page_token or ""
        )
        response = self._call(self._stub.GetMetricHistory, request)
        return PagedList([Metric.from_proto(m) for m in response.metrics], response.next_page_token)

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        metric_key: str,
        start_step: int | None = None,
        end_step: int | None = None,
        max_results: int | None = None,
    ) -> list[Metric]:
        """Sampled history of ``metric_key`` for up to 100 runs within [start_step, end_step];
        each point carries its ``run_id``."""
        request = rpc.GetMetricHistoryBulkIntervalRequest(
            run_ids=list(run_ids), metric_key=metric_key, max_results=max_results or 0
        )
        if start_step is not None:
            request.start_step = start_step
        if end_step is not None:
            request.end_step = end_step
        response = self._call(self._stub.GetMetricHistoryBulkInterval, request)
        return [Metric.from_proto(m.metric, run_id=m.run_id) for m in response.metrics]


#: MLflow's name for the same class.
MlflowClient = Client
