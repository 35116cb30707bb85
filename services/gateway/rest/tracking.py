"""MLflow's tracking endpoints (``/api/2.0/mlflow/experiments|runs|metrics|artifacts/…``) over
mlgrid's TrackingService: each handler builds the contract's request, calls the routed tracking
backend and writes MLflow's response object."""

from __future__ import annotations

import json
from typing import Any

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb

from . import entities as ent
from .context import JsonEndpoint, RestContext, run_id_of
from .errors import invalid
from .fields import TAG, Field, Kind, Spec, int_field, objects, str_field

#: The run tag in which MLflow 2's log-model endpoint keeps the models logged to a run.
LOGGED_MODELS_TAG = "mlflow.log-model.history"

_METRIC = Spec(
    str_field("key", required=True),
    Field("value", Kind.FLOAT, required=True),
    int_field("timestamp"),
    int_field("step"),
    # MLflow 3 links metric points to a logged model and a dataset.
    str_field("model_id"),
    str_field("dataset_name"),
    str_field("dataset_digest"),
    str_field("run_id"),
)
_PARAM = Spec(str_field("key", required=True), str_field("value"))
_DATASET = Spec(
    str_field("name", required=True),
    str_field("digest", required=True),
    str_field("source_type", required=True),
    str_field("source", required=True),
    str_field("schema"),
    str_field("profile"),
)
_DATASET_INPUT = Spec(
    objects("tags", TAG), Field("dataset", Kind.OBJECT, required=True, element=_DATASET)
)
_MODEL_INPUT = Spec(str_field("model_id", required=True))
_RUN_ID = (str_field("run_id"), str_field("run_uuid"))
_VIEW_TYPE = ent.VIEW_TYPE_VALUES


def _run_id(req: dict[str, Any]) -> str:
    run_id = run_id_of(req)
    if not run_id:
        raise invalid(
            "Missing value for required parameter 'run_id'. See the API docs for more "
            "information about request parameters."
        )
    return run_id


def _time(ctx: RestContext) -> float:
    return ctx.timeout


# -- experiments ------------------------------------------------------------------------------


def create_experiment(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    location = req.get("artifact_location", "")
    answer = ctx.backends.tracking().CreateExperiment(
        pb.CreateExperimentRequest(
            name=req["name"],
            artifact_location=ctx.uris.to_backend(location, "artifact_location")
            if location
            else "",
            tags=ent.tags_in(req.get("tags")),
        ),
        timeout=_time(ctx),
    )
    return {"experiment_id": answer.experiment_id}


def get_experiment(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().GetExperiment(
        pb.GetExperimentRequest(experiment_id=req["experiment_id"]), timeout=_time(ctx)
    )
    return {"experiment": ent.experiment_out(answer.experiment, ctx.uris)}


def get_experiment_by_name(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().GetExperimentByName(
        pb.GetExperimentByNameRequest(experiment_name=req["experiment_name"]), timeout=_time(ctx)
    )
    return {"experiment": ent.experiment_out(answer.experiment, ctx.uris)}


def search_experiments(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().SearchExperiments(
        pb.SearchExperimentsRequest(
            max_results=req.get("max_results", 0),
            page_token=req.get("page_token", ""),
            filter=req.get("filter", ""),
            order_by=req.get("order_by", ()),
            view_type=req.get("view_type", 0),  # type: ignore[arg-type]
        ),
        timeout=_time(ctx),
    )
    out: dict[str, Any] = {
        "experiments": [ent.experiment_out(e, ctx.uris) for e in answer.experiments]
    }
    if answer.next_page_token:
        out["next_page_token"] = answer.next_page_token
    return out


def update_experiment(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().UpdateExperiment(
        pb.UpdateExperimentRequest(
            experiment_id=req["experiment_id"], new_name=req.get("new_name", "")
        ),
        timeout=_time(ctx),
    )
    return {}


def delete_experiment(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().DeleteExperiment(
        pb.DeleteExperimentRequest(experiment_id=req["experiment_id"]), timeout=_time(ctx)
    )
    return {}


def restore_experiment(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().RestoreExperiment(
        pb.RestoreExperimentRequest(experiment_id=req["experiment_id"]), timeout=_time(ctx)
    )
    return {}


def set_experiment_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().SetExperimentTag(
        pb.SetExperimentTagRequest(
            experiment_id=req["experiment_id"], key=req["key"], value=req.get("value", "")
        ),
        timeout=_time(ctx),
    )
    return {}


def delete_experiment_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().DeleteExperimentTag(
        pb.DeleteExperimentTagRequest(experiment_id=req["experiment_id"], key=req["key"]),
        timeout=_time(ctx),
    )
    return {}


# -- runs -------------------------------------------------------------------------------------


def create_run(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().CreateRun(
        pb.CreateRunRequest(
            experiment_id=req.get("experiment_id", ""),
            user_id=req.get("user_id", ""),
            start_time=req.get("start_time", 0),
            tags=ent.tags_in(req.get("tags")),
            run_name=req.get("run_name", ""),
        ),
        timeout=_time(ctx),
    )
    return {"run": ent.run_out(answer.run, ctx.uris)}


def get_run(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().GetRun(
        pb.GetRunRequest(run_id=_run_id(req)), timeout=_time(ctx)
    )
    return {"run": ent.run_out(answer.run, ctx.uris)}


def update_run(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    request = pb.UpdateRunRequest(
        run_id=_run_id(req),
        status=req.get("status", 0),  # type: ignore[arg-type]
        run_name=req.get("run_name", ""),
    )
    if "end_time" in req:
        request.end_time = req["end_time"]
    answer = ctx.backends.tracking().UpdateRun(request, timeout=_time(ctx))
    return {"run_info": ent.run_info_out(answer.run_info, ctx.uris)}


def delete_run(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().DeleteRun(pb.DeleteRunRequest(run_id=req["run_id"]), timeout=_time(ctx))
    return {}


def restore_run(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().RestoreRun(
        pb.RestoreRunRequest(run_id=req["run_id"]), timeout=_time(ctx)
    )
    return {}


def search_runs(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().SearchRuns(
        pb.SearchRunsRequest(
            experiment_ids=req.get("experiment_ids", ()),
            filter=req.get("filter", ""),
            run_view_type=req.get("run_view_type", 0),  # type: ignore[arg-type]
            max_results=req.get("max_results", 0),
            order_by=req.get("order_by", ()),
            page_token=req.get("page_token", ""),
        ),
        timeout=_time(ctx),
    )
    uris = ctx.uris
    out: dict[str, Any] = {"runs": [ent.run_out(r, uris) for r in answer.runs]}
    if answer.next_page_token:
        out["next_page_token"] = answer.next_page_token
    return out


# -- logging ----------------------------------------------------------------------------------


def log_metric(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().LogMetric(
        pb.LogMetricRequest(
            run_id=_run_id(req),
            key=req["key"],
            value=req["value"],
            timestamp=req.get("timestamp", 0),
            step=req.get("step", 0),
            model_id=req.get("model_id", ""),
            dataset_name=req.get("dataset_name", ""),
            dataset_digest=req.get("dataset_digest", ""),
        ),
        timeout=_time(ctx),
    )
    return {}


def log_param(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().LogParam(
        pb.LogParamRequest(run_id=_run_id(req), key=req["key"], value=req.get("value", "")),
        timeout=_time(ctx),
    )
    return {}


def set_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().SetTag(
        pb.SetTagRequest(run_id=_run_id(req), key=req["key"], value=req.get("value", "")),
        timeout=_time(ctx),
    )
    return {}


def delete_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().DeleteTag(
        pb.DeleteTagRequest(run_id=req["run_id"], key=req["key"]), timeout=_time(ctx)
    )
    return {}


def log_batch(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().LogBatch(
        pb.LogBatchRequest(
            run_id=req["run_id"],
            metrics=[ent.metric_in(m) for m in req.get("metrics", ())],
            params=[
                tracking_pb2.Param(key=p["key"], value=p.get("value", ""))
                for p in req.get("params", ())
            ],
            tags=ent.tags_in(req.get("tags")),
        ),
        timeout=_time(ctx),
    )
    return {}


def log_inputs(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().LogInputs(
        pb.LogInputsRequest(
            run_id=req["run_id"],
            datasets=ent.dataset_inputs_in(req.get("datasets")),
            models=[tracking_pb2.ModelInput(model_id=m["model_id"]) for m in req.get("models", ())],
        ),
        timeout=_time(ctx),
    )
    return {}


def search_datasets(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    """The UI's dataset filter: the datasets the runs of the shown experiments used."""
    answer = ctx.backends.tracking().SearchDatasets(
        pb.SearchDatasetsRequest(experiment_ids=req.get("experiment_ids", ())),
        timeout=_time(ctx),
    )
    return {"dataset_summaries": [ent.dataset_summary_out(s) for s in answer.dataset_summaries]}


def log_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    """MLflow 2's record of a logged model: appended to the run's ``mlflow.log-model.history``
    tag, as MLflow's stores do."""
    try:
        model = json.loads(req["model_json"])
    except ValueError:
        model = None
    if not isinstance(model, dict):
        raise invalid("Invalid value for parameter 'model_json': expected a JSON object")
    tracking = ctx.backends.tracking()
    run = tracking.GetRun(pb.GetRunRequest(run_id=req["run_id"]), timeout=_time(ctx)).run
    history: list[Any] = []
    for tag in run.data.tags:
        if tag.key == LOGGED_MODELS_TAG:
            try:
                history = json.loads(tag.value)
            except ValueError:
                history = []
    history = [*(history if isinstance(history, list) else []), model]
    tracking.SetTag(
        pb.SetTagRequest(run_id=req["run_id"], key=LOGGED_MODELS_TAG, value=json.dumps(history)),
        timeout=_time(ctx),
    )
    return {}


# -- reading metrics and artifacts ------------------------------------------------------------


def get_metric_history(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    run_id = _run_id(req)
    tracking = ctx.backends.tracking()
    if "max_results" not in req and not req.get("page_token"):
        # The whole history, streamed in columnar chunks (no message size ceiling on long
        # histories, no message per point).
        key = req["metric_key"]
        points: list[dict[str, Any]] = []
        for chunk in tracking.StreamMetricHistory(
            pb.StreamMetricHistoryRequest(run_id=run_id, metric_key=key, columnar=True),
            timeout=_time(ctx),
        ):
            # A tracking server that predates `columnar` (mid-upgrade) sends `metrics`.
            points.extend(ent.metric_out(m) for m in chunk.metrics)
            points.extend(ent.metrics_out_of_columns(key, chunk.columns))
        return {"metrics": points}
    answer = tracking.GetMetricHistory(
        pb.GetMetricHistoryRequest(
            run_id=run_id,
            metric_key=req["metric_key"],
            max_results=req.get("max_results", 0),
            page_token=req.get("page_token", ""),
        ),
        timeout=_time(ctx),
    )
    out: dict[str, Any] = {"metrics": [ent.metric_out(m) for m in answer.metrics]}
    if answer.next_page_token:
        out["next_page_token"] = answer.next_page_token
    return out


def get_metric_history_bulk_interval(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    request = pb.GetMetricHistoryBulkIntervalRequest(
        run_ids=req.get("run_ids", ()),
        metric_key=req["metric_key"],
        max_results=req.get("max_results", 0),
    )
    if "start_step" in req:
        request.start_step = req["start_step"]
    if "end_step" in req:
        request.end_step = req["end_step"]
    answer = ctx.backends.tracking().GetMetricHistoryBulkInterval(request, timeout=_time(ctx))
    return {
        "metrics": [
            {**ent.metric_out(point.metric), "run_id": point.run_id} for point in answer.metrics
        ]
    }


def list_artifacts(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    """A run's artifacts below ``path`` (paths relative to the run's artifact root)."""
    run = ctx.backends.tracking().GetRun(pb.GetRunRequest(run_id=_run_id(req)), timeout=_time(ctx))
    root = run.run.info.artifact_uri
    answer = ctx.backends.artifacts(root).ListArtifacts(
        art.ListArtifactsRequest(
            artifact_uri=root, path=req.get("path", ""), page_token=req.get("page_token", "")
        ),
        timeout=_time(ctx),
    )
    out: dict[str, Any] = {"root_uri": ctx.uris.to_client(root), "files": file_infos(answer.files)}
    if answer.next_page_token:
        out["next_page_token"] = answer.next_page_token
    return out


def file_infos(files: Any, base_names: bool = False) -> list[dict[str, Any]]:
    """MLflow's FileInfo objects (file_size only for files)."""
    out = []
    for f in files:
        path = f.path.rsplit("/", 1)[-1] if base_names else f.path
        if f.is_dir:
            out.append({"path": path, "is_dir": True})
        else:
            out.append({"path": path, "is_dir": False, "file_size": f.file_size})
    return out


ENDPOINTS: list[JsonEndpoint] = [
    JsonEndpoint(
        "createExperiment",
        ("POST",),
        "experiments/create",
        Spec(
            str_field("name", required=True), str_field("artifact_location"), objects("tags", TAG)
        ),
        create_experiment,
    ),
    JsonEndpoint(
        "getExperiment",
        ("GET",),
        "experiments/get",
        Spec(str_field("experiment_id", required=True)),
        get_experiment,
    ),
    JsonEndpoint(
        "getExperimentByName",
        ("GET",),
        "experiments/get-by-name",
        Spec(str_field("experiment_name", required=True)),
        get_experiment_by_name,
    ),
    JsonEndpoint(
        "searchExperiments",
        ("POST", "GET"),
        "experiments/search",
        Spec(
            int_field("max_results"),
            str_field("page_token"),
            str_field("filter"),
            Field("order_by", Kind.STR_LIST),
            Field("view_type", Kind.ENUM, values=_VIEW_TYPE),
        ),
        search_experiments,
    ),
    JsonEndpoint(
        "updateExperiment",
        ("POST",),
        "experiments/update",
        Spec(str_field("experiment_id", required=True), str_field("new_name")),
        update_experiment,
    ),
    JsonEndpoint(
        "deleteExperiment",
        ("POST",),
        "experiments/delete",
        Spec(str_field("experiment_id", required=True)),
        delete_experiment,
    ),
    JsonEndpoint(
        "restoreExperiment",
        ("POST",),
        "experiments/restore",
        Spec(str_field("experiment_id", required=True)),
        restore_experiment,
    ),
    JsonEndpoint(
        "setExperimentTag",
        ("POST",),
        "experiments/set-experiment-tag",
        Spec(
            str_field("experiment_id", required=True),
            str_field("key", required=True),
            str_field("value"),
        ),
        set_experiment_tag,
    ),
    JsonEndpoint(
        "deleteExperimentTag",
        ("POST",),
        "experiments/delete-experiment-tag",
        Spec(str_field("experiment_id", required=True), str_field("key", required=True)),
        delete_experiment_tag,
    ),
    JsonEndpoint(
        "createRun",
        ("POST",),
        "runs/create",
        Spec(
            str_field("experiment_id"),
            str_field("user_id"),
            str_field("run_name"),
            int_field("start_time"),
            objects("tags", TAG),
        ),
        create_run,
    ),
    JsonEndpoint("getRun", ("GET",), "runs/get", Spec(*_RUN_ID), get_run),
    JsonEndpoint(
        "updateRun",
        ("POST",),
        "runs/update",
        Spec(
            *_RUN_ID,
            Field("status", Kind.ENUM, values=ent.RUN_STATUS_VALUES),
            int_field("end_time"),
            str_field("run_name"),
        ),
        update_run,
    ),
    JsonEndpoint(
        "deleteRun", ("POST",), "runs/delete", Spec(str_field("run_id", required=True)), delete_run
    ),
    JsonEndpoint(
        "restoreRun",
        ("POST",),
        "runs/restore",
        Spec(str_field("run_id", required=True)),
        restore_run,
    ),
    JsonEndpoint(
        "searchRuns",
        ("POST",),
        "runs/search",
        Spec(
            Field("experiment_ids", Kind.STR_LIST),
            str_field("filter"),
            Field("run_view_type", Kind.ENUM, values=_VIEW_TYPE),
            int_field("max_results"),
            Field("order_by", Kind.STR_LIST),
            str_field("page_token"),
        ),
        search_runs,
    ),
    JsonEndpoint(
        "logMetric",
        ("POST",),
        "runs/log-metric",
        Spec(
            *_RUN_ID,
            str_field("key", required=True),
            Field("value", Kind.FLOAT, required=True),
            int_field("timestamp", required=True),
            int_field("step"),
            str_field("model_id"),
            str_field("dataset_name"),
            str_field("dataset_digest"),
        ),
        log_metric,
    ),
    JsonEndpoint(
        "logParam",
        ("POST",),
        "runs/log-parameter",
        Spec(*_RUN_ID, str_field("key", required=True), str_field("value")),
        log_param,
    ),
    JsonEndpoint(
        "setTag",
        ("POST",),
        "runs/set-tag",
        Spec(*_RUN_ID, str_field("key", required=True), str_field("value")),
        set_tag,
    ),
    JsonEndpoint(
        "deleteTag",
        ("POST",),
        "runs/delete-tag",
        Spec(str_field("run_id", required=True), str_field("key", required=True)),
        delete_tag,
    ),
    JsonEndpoint(
        "logBatch",
        ("POST",),
        "runs/log-batch",
        Spec(
            str_field("run_id", required=True),
            objects("metrics", _METRIC),
            objects("params", _PARAM),
            objects("tags", TAG),
        ),
        log_batch,
    ),
    JsonEndpoint(
        "logInputs",
        ("POST",),
        "runs/log-inputs",
        Spec(
            str_field("run_id", required=True),
            objects("datasets", _DATASET_INPUT),
            objects("models", _MODEL_INPUT),
        ),
        log_inputs,
    ),
    JsonEndpoint(
        "searchDatasets",
        ("POST",),
        "experiments/search-datasets",
        Spec(Field("experiment_ids", Kind.STR_LIST)),
        search_datasets,
    ),
    JsonEndpoint(
        "logModel",
        ("POST",),
        "runs/log-model",
        Spec(str_field("run_id", required=True), str_field("model_json", required=True)),
        log_model,
    ),
    JsonEndpoint(
        "getMetricHistory",
        ("GET",),
        "metrics/get-history",
        Spec(
            *_RUN_ID,
            str_field("metric_key", required=True),
            str_field("page_token"),
            int_field("max_results"),
        ),
        get_metric_history,
    ),
    JsonEndpoint(
        "getMetricHistoryBulkInterval",
        ("GET",),
        "metrics/get-history-bulk-interval",
        Spec(
            Field("run_ids", Kind.STR_LIST, required=True),
            str_field("metric_key", required=True),
            int_field("start_step"),
            int_field("end_step"),
            int_field("max_results"),
        ),
        get_metric_history_bulk_interval,
    ),
    JsonEndpoint(
        "listArtifacts",
        ("GET",),
        "artifacts/list",
        Spec(*_RUN_ID, str_field("path"), str_field("page_token")),
        list_artifacts,
    ),
]
