"""TrackingService servicer: proto in → domain → proto out, nothing else.

Errors are raised as mlgrid exceptions; the shared interceptor turns them into gRPC statuses.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid_services.common.store_router import StoreRouter

from .domain import TrackingDomain
from .history_columns import columns_chunk


class TrackingServicer(pb_grpc.TrackingServiceServicer):
    """Each call is served by the domain over the store it names (services/common/store_router)."""

    def __init__(self, domains: StoreRouter[TrackingDomain]) -> None:
        self.domains = domains

    # ------------------------------------------------------------ experiments

    def CreateExperiment(self, request, context):
        experiment_id = self.domains.for_call(context).create_experiment(
            request.name, request.artifact_location, request.tags
        )
        return pb.CreateExperimentResponse(experiment_id=experiment_id)

    def GetExperiment(self, request, context):
        return pb.GetExperimentResponse(
            experiment=self.domains.for_call(context).get_experiment(request.experiment_id)
        )

    def GetExperimentByName(self, request, context):
        return pb.GetExperimentByNameResponse(
            experiment=self.domains.for_call(context).get_experiment_by_name(
                request.experiment_name
            )
        )

    def SearchExperiments(self, request, context):
        experiments, token = self.domains.for_call(context).search_experiments(
            request.view_type,
            request.max_results,
            request.filter,
            list(request.order_by),
            request.page_token,
        )
        return pb.SearchExperimentsResponse(experiments=experiments, next_page_token=token)

    def UpdateExperiment(self, request, context):
        self.domains.for_call(context).rename_experiment(request.experiment_id, request.new_name)
        return pb.UpdateExperimentResponse()

    def DeleteExperiment(self, request, context):
        self.domains.for_call(context).delete_experiment(request.experiment_id)
        return pb.DeleteExperimentResponse()

    def RestoreExperiment(self, request, context):
        self.domains.for_call(context).restore_experiment(request.experiment_id)
        return pb.RestoreExperimentResponse()

    def SetExperimentTag(self, request, context):
        self.domains.for_call(context).set_experiment_tag(
            request.experiment_id, request.key, request.value
        )
        return pb.SetExperimentTagResponse()

    def DeleteExperimentTag(self, request, context):
        self.domains.for_call(context).delete_experiment_tag(request.experiment_id, request.key)
        return pb.DeleteExperimentTagResponse()

    # ------------------------------------------------------------------- runs

    def CreateRun(self, request, context):
        run = self.domains.for_call(context).create_run(
            request.experiment_id,
            request.user_id,
            request.start_time,
            list(request.tags),
            request.run_name,
        )
        return pb.CreateRunResponse(run=run)

    def GetRun(self, request, context):
        return pb.GetRunResponse(run=self.domains.for_call(context).get_run(request.run_id))

    def UpdateRun(self, request, context):
        end_time = request.end_time if request.HasField("end_time") else None
        info = self.domains.for_call(context).update_run(
            request.run_id, request.status, end_time, request.run_name
        )
        return pb.UpdateRunResponse(run_info=info)

    def DeleteRun(self, request, context):
        self.domains.for_call(context).delete_run(request.run_id)
        return pb.DeleteRunResponse()

    def RestoreRun(self, request, context):
        self.domains.for_call(context).restore_run(request.run_id)
        return pb.RestoreRunResponse()

    def SearchRuns(self, request, context):
        runs, token = self.domains.for_call(context).search_runs(
            list(request.experiment_ids),
            request.filter,
            request.run_view_type,
            request.max_results,
            list(request.order_by),
            request.page_token,
        )
        return pb.SearchRunsResponse(runs=runs, next_page_token=token)

    # --------------------------------------------------------------- run data

    def LogParam(self, request, context):
        self.domains.for_call(context).log_param(request.run_id, request.key, request.value)
        return pb.LogParamResponse()

    def LogMetric(self, request, context):
        metric = tracking_pb2.Metric(
            key=request.key,
            value=request.value,
            timestamp=request.timestamp,
            step=request.step,
            model_id=request.model_id,
            dataset_name=request.dataset_name,
            dataset_digest=request.dataset_digest,
        )
        self.domains.for_call(context).log_metric(request.run_id, metric)
        return pb.LogMetricResponse()

    def SetTag(self, request, context):
        self.domains.for_call(context).set_tag(request.run_id, request.key, request.value)
        return pb.SetTagResponse()

    def DeleteTag(self, request, context):
        self.domains.for_call(context).delete_tag(request.run_id, request.key)
        return pb.DeleteTagResponse()

    def LogBatch(self, request, context):
        columns = request.metric_columns if request.HasField("metric_columns") else None
        self.domains.for_call(context).log_batch(
            request.run_id, request.metrics, request.params, request.tags, columns
        )
        received = len(request.metrics) + (len(columns.values) if columns is not None else 0)
        return pb.LogBatchResponse(metrics_received=received)

    def LogInputs(self, request, context):
        self.domains.for_call(context).log_inputs(request.run_id, request.datasets, request.models)
        return pb.LogInputsResponse()

    def SearchDatasets(self, request, context):
        summaries = self.domains.for_call(context).search_datasets(request.experiment_ids)
        return pb.SearchDatasetsResponse(dataset_summaries=summaries)

    def IngestMetrics(self, request_iterator, context):
        written = 0
        for message in request_iterator:
            written += self.domains.for_call(context).ingest_metrics(
                message.run_id, message.metrics
            )
        return pb.IngestMetricsResponse(metrics_written=written)

    # ---------------------------------------------------------------- history

    def GetMetricHistory(self, request, context):
        metrics, token = self.domains.for_call(context).get_metric_history(
            request.run_id, request.metric_key, request.max_results, request.page_token
        )
        return pb.GetMetricHistoryResponse(metrics=metrics, next_page_token=token)

    def StreamMetricHistory(
        self, request: pb.StreamMetricHistoryRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamMetricHistoryResponse]:
        key = request.metric_key
        domain = self.domains.for_call(context)
        if request.columnar:
            for columns in domain.iter_metric_history_columns(request.run_id, key):
                yield columns_chunk(columns)
            return
        # A client that predates `columnar`: one Metric message per point.
        for chunk in domain.iter_metric_history(request.run_id, key):
            response = pb.StreamMetricHistoryResponse()
            add = response.metrics.add  # cheapest way to build many small messages
            for step, timestamp, value in chunk:
                add(key=key, value=value, timestamp=timestamp, step=step)
            yield response

    def GetMetricHistoryBulkInterval(self, request, context):
        metrics = self.domains.for_call(context).get_metric_history_bulk_interval(
            list(request.run_ids),
            request.metric_key,
            request.start_step if request.HasField("start_step") else None,
            request.end_step if request.HasField("end_step") else None,
            request.max_results,
        )
        return pb.GetMetricHistoryBulkIntervalResponse(metrics=metrics)

    # ---------------------------------------------------------- logged models

    def LogOutputs(self, request, context):
        self.domains.for_call(context).log_outputs(request.run_id, request.models)
        return pb.LogOutputsResponse()

    def CreateLoggedModel(self, request, context):
        model = self.domains.for_call(context).create_logged_model(
            request.experiment_id,
            request.name,
            request.model_type,
            request.source_run_id,
            request.params,
            request.tags,
        )
        return pb.CreateLoggedModelResponse(model=model)

    def FinalizeLoggedModel(self, request, context):
        model = self.domains.for_call(context).finalize_logged_model(
            request.model_id, request.status
        )
        return pb.FinalizeLoggedModelResponse(model=model)

    def GetLoggedModel(self, request, context):
        model = self.domains.for_call(context).get_logged_model(
            request.model_id, request.allow_deleted
        )
        return pb.GetLoggedModelResponse(model=model)

    def DeleteLoggedModel(self, request, context):
        self.domains.for_call(context).delete_logged_model(request.model_id)
        return pb.DeleteLoggedModelResponse()

    def SearchLoggedModels(self, request, context):
        models, token = self.domains.for_call(context).search_logged_models(
            list(request.experiment_ids),
            request.filter,
            request.datasets,
            request.max_results,
            request.order_by,
            request.page_token,
        )
        return pb.SearchLoggedModelsResponse(models=models, next_page_token=token)

    def SetLoggedModelTags(self, request, context):
        model = self.domains.for_call(context).set_logged_model_tags(request.model_id, request.tags)
        return pb.SetLoggedModelTagsResponse(model=model)

    def DeleteLoggedModelTag(self, request, context):
        self.domains.for_call(context).delete_logged_model_tag(request.model_id, request.tag_key)
        return pb.DeleteLoggedModelTagResponse()

    def LogLoggedModelParams(self, request, context):
        self.domains.for_call(context).log_logged_model_params(request.model_id, request.params)
        return pb.LogLoggedModelParamsResponse()
