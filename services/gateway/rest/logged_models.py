"""MLflow 3's LoggedModel endpoints (``/api/2.0/mlflow/logged-models…``) and ``runs/outputs``
over the TrackingService's logged-model RPCs.

Most of these paths carry the model id (and a tag key) in the path itself; the router passes
them in as fields, so a handler sees one dict whatever part of the request a value came from.
"""

from __future__ import annotations

from typing import Any

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb

from . import entities as ent
from .context import JsonEndpoint, RestContext
from .fields import TAG, Field, Kind, Spec, int_field, objects, str_field
from .tracking import file_infos

#: MLflow's LoggedModelStatus names; mlgrid's numbers are the same.
STATUS_VALUES = {
    "LOGGED_MODEL_STATUS_UNSPECIFIED": 0,
    "LOGGED_MODEL_PENDING": 1,
    "LOGGED_MODEL_READY": 2,
    "LOGGED_MODEL_UPLOAD_FAILED": 3,
}
_PARAM = Spec(str_field("key", required=True), str_field("value"))
_MODEL_ID = str_field("model_id", required=True)


def _params(items: Any) -> list[tracking_pb2.Param]:
    return [tracking_pb2.Param(key=p["key"], value=p.get("value", "")) for p in items or ()]


def _model(ctx: RestContext, answer: Any) -> dict[str, Any]:
    return {"model": ent.logged_model_out(answer.model, ctx.uris)}


def create_logged_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().CreateLoggedModel(
        pb.CreateLoggedModelRequest(
            experiment_id=req["experiment_id"],
            name=req.get("name", ""),
            model_type=req.get("model_type", ""),
            source_run_id=req.get("source_run_id", ""),
            params=_params(req.get("params")),
            tags=ent.tags_in(req.get("tags")),
        ),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def finalize_logged_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().FinalizeLoggedModel(
        pb.FinalizeLoggedModelRequest(
            model_id=req["model_id"],
            status=req["status"],  # type: ignore[arg-type]
        ),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def get_logged_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().GetLoggedModel(
        pb.GetLoggedModelRequest(
            model_id=req["model_id"], allow_deleted=req.get("allow_deleted", False)
        ),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def delete_logged_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().DeleteLoggedModel(
        pb.DeleteLoggedModelRequest(model_id=req["model_id"]), timeout=ctx.timeout
    )
    return {}


def search_logged_models(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    order_by = []
    for clause in req.get("order_by", ()):
        message = pb.LoggedModelOrderBy(
            field_name=clause["field_name"],
            dataset_name=clause.get("dataset_name", ""),
            dataset_digest=clause.get("dataset_digest", ""),
        )
        if "ascending" in clause:
            message.ascending = clause["ascending"]
        order_by.append(message)
    answer = ctx.backends.tracking().SearchLoggedModels(
        pb.SearchLoggedModelsRequest(
            experiment_ids=req.get("experiment_ids", ()),
            filter=req.get("filter", ""),
            datasets=[
                pb.LoggedModelDatasetFilter(
                    dataset_name=d["dataset_name"], dataset_digest=d.get("dataset_digest", "")
                )
                for d in req.get("datasets", ())
            ],
            max_results=req.get("max_results", 0),
            order_by=order_by,
            page_token=req.get("page_token", ""),
        ),
        timeout=ctx.timeout,
    )
    out: dict[str, Any] = {"models": [ent.logged_model_out(m, ctx.uris) for m in answer.models]}
    if answer.next_page_token:
        out["next_page_token"] = answer.next_page_token
    return out


def set_logged_model_tags(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.tracking().SetLoggedModelTags(
        pb.SetLoggedModelTagsRequest(model_id=req["model_id"], tags=ent.tags_in(req.get("tags"))),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def delete_logged_model_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().DeleteLoggedModelTag(
        pb.DeleteLoggedModelTagRequest(model_id=req["model_id"], tag_key=req["tag_key"]),
        timeout=ctx.timeout,
    )
    return {}


def log_logged_model_params(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().LogLoggedModelParams(
        pb.LogLoggedModelParamsRequest(model_id=req["model_id"], params=_params(req.get("params"))),
        timeout=ctx.timeout,
    )
    return {}


def list_logged_model_artifacts(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    """A logged model's files below ``artifact_directory_path`` (for MLflow's UI)."""
    model = ctx.backends.tracking().GetLoggedModel(
        pb.GetLoggedModelRequest(model_id=req["model_id"]), timeout=ctx.timeout
    )
    root = model.model.info.artifact_uri
    answer = ctx.backends.artifacts(root).ListArtifacts(
        art.ListArtifactsRequest(
            artifact_uri=root,
            path=req.get("artifact_directory_path", ""),
            page_token=req.get("page_token", ""),
        ),
        timeout=ctx.timeout,
    )
    out: dict[str, Any] = {"root_uri": ctx.uris.to_client(root), "files": file_infos(answer.files)}
    if answer.next_page_token:
        out["next_page_token"] = answer.next_page_token
    return out


def log_outputs(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.tracking().LogOutputs(
        pb.LogOutputsRequest(
            run_id=req["run_id"],
            models=[
                tracking_pb2.ModelOutput(model_id=m["model_id"], step=m.get("step", 0))
                for m in req.get("models", ())
            ],
        ),
        timeout=ctx.timeout,
    )
    return {}


ENDPOINTS: list[JsonEndpoint] = [
    JsonEndpoint(
        "createLoggedModel",
        ("POST",),
        "logged-models",
        Spec(
            str_field("experiment_id", required=True),
            str_field("name"),
            str_field("model_type"),
            str_field("source_run_id"),
            objects("params", _PARAM),
            objects("tags", TAG),
        ),
        create_logged_model,
    ),
    JsonEndpoint(
        "searchLoggedModels",
        ("POST",),
        "logged-models/search",
        Spec(
            Field("experiment_ids", Kind.STR_LIST),
            str_field("filter"),
            objects(
                "datasets",
                Spec(str_field("dataset_name", required=True), str_field("dataset_digest")),
            ),
            int_field("max_results"),
            objects(
                "order_by",
                Spec(
                    str_field("field_name", required=True),
                    Field("ascending", Kind.BOOL),
                    str_field("dataset_name"),
                    str_field("dataset_digest"),
                ),
            ),
            str_field("page_token"),
        ),
        search_logged_models,
    ),
    JsonEndpoint(
        "finalizeLoggedModel",
        ("PATCH",),
        "logged-models/{model_id}",
        Spec(_MODEL_ID, Field("status", Kind.ENUM, required=True, values=STATUS_VALUES)),
        finalize_logged_model,
    ),
    JsonEndpoint(
        "getLoggedModel",
        ("GET",),
        "logged-models/{model_id}",
        Spec(_MODEL_ID, Field("allow_deleted", Kind.BOOL)),
        get_logged_model,
    ),
    JsonEndpoint(
        "deleteLoggedModel",
        ("DELETE",),
        "logged-models/{model_id}",
        Spec(_MODEL_ID),
        delete_logged_model,
    ),
    JsonEndpoint(
        "setLoggedModelTags",
        ("PATCH",),
        "logged-models/{model_id}/tags",
        Spec(_MODEL_ID, objects("tags", TAG)),
        set_logged_model_tags,
    ),
    JsonEndpoint(
        "deleteLoggedModelTag",
        ("DELETE",),
        "logged-models/{model_id}/tags/{tag_key}",
        Spec(_MODEL_ID, str_field("tag_key", required=True)),
        delete_logged_model_tag,
    ),
    JsonEndpoint(
        "listLoggedModelArtifacts",
        ("GET",),
        "logged-models/{model_id}/artifacts/directories",
        Spec(_MODEL_ID, str_field("artifact_directory_path"), str_field("page_token")),
        list_logged_model_artifacts,
    ),
    JsonEndpoint(
        "LogLoggedModelParams",
        ("POST",),
        "logged-models/{model_id}/params",
        Spec(_MODEL_ID, objects("params", _PARAM)),
        log_logged_model_params,
    ),
    JsonEndpoint(
        "logOutputs",
        ("POST",),
        "runs/outputs",
        Spec(
            str_field("run_id", required=True),
            objects("models", Spec(str_field("model_id", required=True), int_field("step"))),
        ),
        log_outputs,
    ),
]
