"""MLflow's model-registry endpoints (``/api/2.0/mlflow/registered-models|model-versions/…``)
over mlgrid's RegistryService."""

from __future__ import annotations

from typing import Any

from mlgrid.api.registry.v1 import registry_service_pb2 as pb

from . import entities as ent
from .context import JsonEndpoint, RestContext
from .fields import TAG, Field, Kind, Spec, int_field, objects, str_field


def _model(ctx: RestContext, answer: Any) -> dict[str, Any]:
    return {"registered_model": ent.registered_model_out(answer.registered_model, ctx.uris)}


def _version(ctx: RestContext, answer: Any) -> dict[str, Any]:
    return {"model_version": ent.model_version_out(answer.model_version, ctx.uris)}


def _page(ctx: RestContext, key: str, items: list[dict[str, Any]], token: str) -> dict[str, Any]:
    out: dict[str, Any] = {key: items}
    if token:
        out["next_page_token"] = token
    return out


# -- registered models ------------------------------------------------------------------------


def create_registered_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().CreateRegisteredModel(
        pb.CreateRegisteredModelRequest(
            name=req["name"],
            tags=ent.tags_in(req.get("tags")),
            description=req.get("description", ""),
        ),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def get_registered_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().GetRegisteredModel(
        pb.GetRegisteredModelRequest(name=req["name"]), timeout=ctx.timeout
    )
    return _model(ctx, answer)


def rename_registered_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().RenameRegisteredModel(
        pb.RenameRegisteredModelRequest(name=req["name"], new_name=req.get("new_name", "")),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def update_registered_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().UpdateRegisteredModel(
        pb.UpdateRegisteredModelRequest(name=req["name"], description=req.get("description", "")),
        timeout=ctx.timeout,
    )
    return _model(ctx, answer)


def delete_registered_model(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().DeleteRegisteredModel(
        pb.DeleteRegisteredModelRequest(name=req["name"]), timeout=ctx.timeout
    )
    return {}


def search_registered_models(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().SearchRegisteredModels(
        pb.SearchRegisteredModelsRequest(
            filter=req.get("filter", ""),
            max_results=req.get("max_results", 0),
            order_by=req.get("order_by", ()),
            page_token=req.get("page_token", ""),
        ),
        timeout=ctx.timeout,
    )
    models = [ent.registered_model_out(m, ctx.uris) for m in answer.registered_models]
    return _page(ctx, "registered_models", models, answer.next_page_token)


def get_latest_versions(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().GetLatestVersions(
        pb.GetLatestVersionsRequest(name=req["name"], stages=req.get("stages", ())),
        timeout=ctx.timeout,
    )
    return {"model_versions": [ent.model_version_out(v, ctx.uris) for v in answer.model_versions]}


def set_registered_model_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().SetRegisteredModelTag(
        pb.SetRegisteredModelTagRequest(
            name=req["name"], key=req["key"], value=req.get("value", "")
        ),
        timeout=ctx.timeout,
    )
    return {}


def delete_registered_model_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().DeleteRegisteredModelTag(
        pb.DeleteRegisteredModelTagRequest(name=req["name"], key=req["key"]), timeout=ctx.timeout
    )
    return {}


def set_registered_model_alias(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().SetRegisteredModelAlias(
        pb.SetRegisteredModelAliasRequest(
            name=req["name"], alias=req["alias"], version=req["version"]
        ),
        timeout=ctx.timeout,
    )
    return {}


def delete_registered_model_alias(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().DeleteRegisteredModelAlias(
        pb.DeleteRegisteredModelAliasRequest(name=req["name"], alias=req["alias"]),
        timeout=ctx.timeout,
    )
    return {}


def get_model_version_by_alias(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().GetModelVersionByAlias(
        pb.GetModelVersionByAliasRequest(name=req["name"], alias=req["alias"]),
        timeout=ctx.timeout,
    )
    return _version(ctx, answer)


# -- model versions ---------------------------------------------------------------------------


def create_model_version(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().CreateModelVersion(
        pb.CreateModelVersionRequest(
            name=req["name"],
            source=ctx.uris.to_backend(req["source"], "source"),
            run_id=req.get("run_id", ""),
            tags=ent.tags_in(req.get("tags")),
            run_link=req.get("run_link", ""),
            description=req.get("description", ""),
            model_id=req.get("model_id", ""),
        ),
        timeout=ctx.timeout,
    )
    return _version(ctx, answer)


def get_model_version(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().GetModelVersion(
        pb.GetModelVersionRequest(name=req["name"], version=req["version"]), timeout=ctx.timeout
    )
    return _version(ctx, answer)


def update_model_version(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().UpdateModelVersion(
        pb.UpdateModelVersionRequest(
            name=req["name"], version=req["version"], description=req.get("description", "")
        ),
        timeout=ctx.timeout,
    )
    return _version(ctx, answer)


def delete_model_version(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().DeleteModelVersion(
        pb.DeleteModelVersionRequest(name=req["name"], version=req["version"]),
        timeout=ctx.timeout,
    )
    return {}


def search_model_versions(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().SearchModelVersions(
        pb.SearchModelVersionsRequest(
            filter=req.get("filter", ""),
            max_results=req.get("max_results", 0),
            order_by=req.get("order_by", ()),
            page_token=req.get("page_token", ""),
        ),
        timeout=ctx.timeout,
    )
    versions = [ent.model_version_out(v, ctx.uris) for v in answer.model_versions]
    return _page(ctx, "model_versions", versions, answer.next_page_token)


def transition_model_version_stage(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().TransitionModelVersionStage(
        pb.TransitionModelVersionStageRequest(
            name=req["name"],
            version=req["version"],
            stage=req["stage"],
            archive_existing_versions=req.get("archive_existing_versions", False),
        ),
        timeout=ctx.timeout,
    )
    return _version(ctx, answer)


def set_model_version_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().SetModelVersionTag(
        pb.SetModelVersionTagRequest(
            name=req["name"], version=req["version"], key=req["key"], value=req.get("value", "")
        ),
        timeout=ctx.timeout,
    )
    return {}


def delete_model_version_tag(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    ctx.backends.registry().DeleteModelVersionTag(
        pb.DeleteModelVersionTagRequest(name=req["name"], version=req["version"], key=req["key"]),
        timeout=ctx.timeout,
    )
    return {}


def get_model_version_download_uri(ctx: RestContext, req: dict[str, Any]) -> dict[str, Any]:
    answer = ctx.backends.registry().GetModelVersionDownloadUri(
        pb.GetModelVersionDownloadUriRequest(name=req["name"], version=req["version"]),
        timeout=ctx.timeout,
    )
    return {"artifact_uri": ctx.uris.to_client(answer.artifact_uri)}


_NAME = str_field("name", required=True)
_VERSION = str_field("version", required=True)
_SEARCH = Spec(
    str_field("filter"),
    int_field("max_results"),
    Field("order_by", Kind.STR_LIST),
    str_field("page_token"),
)

ENDPOINTS: list[JsonEndpoint] = [
    JsonEndpoint(
        "createRegisteredModel",
        ("POST",),
        "registered-models/create",
        Spec(_NAME, objects("tags", TAG), str_field("description"), str_field("deployment_job_id")),
        create_registered_model,
    ),
    JsonEndpoint(
        "renameRegisteredModel",
        ("POST",),
        "registered-models/rename",
        Spec(_NAME, str_field("new_name", required=True)),
        rename_registered_model,
    ),
    JsonEndpoint(
        "updateRegisteredModel",
        ("PATCH",),
        "registered-models/update",
        Spec(_NAME, str_field("description"), str_field("deployment_job_id")),
        update_registered_model,
    ),
    JsonEndpoint(
        "deleteRegisteredModel",
        ("DELETE",),
        "registered-models/delete",
        Spec(_NAME),
        delete_registered_model,
    ),
    JsonEndpoint(
        "getRegisteredModel", ("GET",), "registered-models/get", Spec(_NAME), get_registered_model
    ),
    JsonEndpoint(
        "searchRegisteredModels",
        ("GET",),
        "registered-models/search",
        _SEARCH,
        search_registered_models,
    ),
    JsonEndpoint(
        "getLatestVersions",
        ("POST", "GET"),
        "registered-models/get-latest-versions",
        Spec(_NAME, Field("stages", Kind.STR_LIST)),
        get_latest_versions,
    ),
    JsonEndpoint(
        "setRegisteredModelTag",
        ("POST",),
        "registered-models/set-tag",
        Spec(_NAME, str_field("key", required=True), str_field("value")),
        set_registered_model_tag,
    ),
    JsonEndpoint(
        "deleteRegisteredModelTag",
        ("DELETE",),
        "registered-models/delete-tag",
        Spec(_NAME, str_field("key", required=True)),
        delete_registered_model_tag,
    ),
    JsonEndpoint(
        "setRegisteredModelAlias",
        ("POST",),
        "registered-models/alias",
        Spec(_NAME, str_field("alias", required=True), _VERSION),
        set_registered_model_alias,
    ),
    JsonEndpoint(
        "deleteRegisteredModelAlias",
        ("DELETE",),
        "registered-models/alias",
        Spec(_NAME, str_field("alias", required=True)),
        delete_registered_model_alias,
    ),
    JsonEndpoint(
        "getModelVersionByAlias",
        ("GET",),
        "registered-models/alias",
        Spec(_NAME, str_field("alias", required=True)),
        get_model_version_by_alias,
    ),
    JsonEndpoint(
        "createModelVersion",
        ("POST",),
        "model-versions/create",
        Spec(
            _NAME,
            str_field("source", required=True),
            str_field("run_id"),
            objects("tags", TAG),
            str_field("run_link"),
            str_field("description"),
            str_field("model_id"),
        ),
        create_model_version,
    ),
    JsonEndpoint(
        "updateModelVersion",
        ("PATCH",),
        "model-versions/update",
        Spec(_NAME, _VERSION, str_field("description")),
        update_model_version,
    ),
    JsonEndpoint(
        "transitionModelVersionStage",
        ("POST",),
        "model-versions/transition-stage",
        Spec(
            _NAME,
            _VERSION,
            str_field("stage", required=True),
            Field("archive_existing_versions", Kind.BOOL),
        ),
        transition_model_version_stage,
    ),
    JsonEndpoint(
        "deleteModelVersion",
        ("DELETE",),
        "model-versions/delete",
        Spec(_NAME, _VERSION),
        delete_model_version,
    ),
    JsonEndpoint(
        "getModelVersion", ("GET",), "model-versions/get", Spec(_NAME, _VERSION), get_model_version
    ),
    JsonEndpoint(
        "searchModelVersions",
        ("GET",),
        "model-versions/search",
        _SEARCH,
        search_model_versions,
    ),
    JsonEndpoint(
        "getModelVersionDownloadUri",
        ("GET",),
        "model-versions/get-download-uri",
        Spec(_NAME, _VERSION),
        get_model_version_download_uri,
    ),
    JsonEndpoint(
        "setModelVersionTag",
        ("POST",),
        "model-versions/set-tag",
        Spec(_NAME, _VERSION, str_field("key", required=True), str_field("value")),
        set_model_version_tag,
    ),
    JsonEndpoint(
        "deleteModelVersionTag",
        ("DELETE",),
        "model-versions/delete-tag",
        Spec(_NAME, _VERSION, str_field("key", required=True)),
        delete_model_version_tag,
    ),
]
