"""gRPC adapter of the registry: request in -> domain call -> response out. No rules here."""

from __future__ import annotations

import grpc

from mlgrid.api.registry.v1 import registry_service_pb2 as pb
from mlgrid.api.registry.v1 import registry_service_pb2_grpc
from mlgrid_services.common.store_router import StoreRouter

from .domain import Registry


def _tags(tags) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(t.key, t.value) for t in tags]


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    """Each call is served by the registry over the store it names (services/common/
    store_router)."""

    def __init__(self, registries: StoreRouter[Registry]) -> None:
        self.registries = registries

    def _registry(self, context: grpc.ServicerContext) -> Registry:
        return self.registries.for_call(context)

    # registered models
    def CreateRegisteredModel(self, request, context):
        model = self._registry(context).create_registered_model(
            request.name, _tags(request.tags), request.description
        )
        return pb.CreateRegisteredModelResponse(registered_model=model)

    def GetRegisteredModel(self, request, context):
        model = self._registry(context).get_registered_model(request.name)
        return pb.GetRegisteredModelResponse(registered_model=model)

    def RenameRegisteredModel(self, request, context):
        model = self._registry(context).rename_registered_model(request.name, request.new_name)
        return pb.RenameRegisteredModelResponse(registered_model=model)

    def UpdateRegisteredModel(self, request, context):
        model = self._registry(context).update_registered_model(request.name, request.description)
        return pb.UpdateRegisteredModelResponse(registered_model=model)

    def DeleteRegisteredModel(self, request, context):
        self._registry(context).delete_registered_model(request.name)
        return pb.DeleteRegisteredModelResponse()

    def SearchRegisteredModels(self, request, context):
        page = self._registry(context).search_registered_models(
            request.filter, request.max_results, request.order_by, request.page_token
        )
        return pb.SearchRegisteredModelsResponse(
            registered_models=page.items, next_page_token=page.next_page_token
        )

    def GetLatestVersions(self, request, context):
        versions = self._registry(context).get_latest_versions(request.name, request.stages)
        return pb.GetLatestVersionsResponse(model_versions=versions)

    def SetRegisteredModelTag(self, request, context):
        self._registry(context).set_registered_model_tag(request.name, request.key, request.value)
        return pb.SetRegisteredModelTagResponse()

    def DeleteRegisteredModelTag(self, request, context):
        self._registry(context).delete_registered_model_tag(request.name, request.key)
        return pb.DeleteRegisteredModelTagResponse()

    # model versions
    def CreateModelVersion(self, request, context):
        version = self._registry(context).create_model_version(
            request.name,
            request.source,
            request.run_id,
            _tags(request.tags),
            request.run_link,
            request.description,
            model_id=request.model_id,
        )
        return pb.CreateModelVersionResponse(model_version=version)

    def GetModelVersion(self, request, context):
        version = self._registry(context).get_model_version(request.name, request.version)
        return pb.GetModelVersionResponse(model_version=version)

    def UpdateModelVersion(self, request, context):
        version = self._registry(context).update_model_version(
            request.name, request.version, request.description
        )
        return pb.UpdateModelVersionResponse(model_version=version)

    def DeleteModelVersion(self, request, context):
        self._registry(context).delete_model_version(request.name, request.version)
        return pb.DeleteModelVersionResponse()

    def SearchModelVersions(self, request, context):
        page = self._registry(context).search_model_versions(
            request.filter, request.max_results, request.order_by, request.page_token
        )
        return pb.SearchModelVersionsResponse(
            model_versions=page.items, next_page_token=page.next_page_token
        )

    def TransitionModelVersionStage(self, request, context):
        version = self._registry(context).transition_model_version_stage(
            request.name, request.version, request.stage, request.archive_existing_versions
        )
        return pb.TransitionModelVersionStageResponse(model_version=version)

    def SetModelVersionTag(self, request, context):
        self._registry(context).set_model_version_tag(
            request.name, request.version, request.key, request.value
        )
        return pb.SetModelVersionTagResponse()

    def DeleteModelVersionTag(self, request, context):
        self._registry(context).delete_model_version_tag(request.name, request.version, request.key)
        return pb.DeleteModelVersionTagResponse()

    def GetModelVersionDownloadUri(self, request, context):
        uri = self._registry(context).get_model_version_download_uri(request.name, request.version)
        return pb.GetModelVersionDownloadUriResponse(artifact_uri=uri)

    # aliases
    def SetRegisteredModelAlias(self, request, context):
        self._registry(context).set_registered_model_alias(
            request.name, request.alias, request.version
        )
        return pb.SetRegisteredModelAliasResponse()

    def DeleteRegisteredModelAlias(self, request, context):
        self._registry(context).delete_registered_model_alias(request.name, request.alias)
        return pb.DeleteRegisteredModelAliasResponse()

    def GetModelVersionByAlias(self, request, context):
        version = self._registry(context).get_model_version_by_alias(request.name, request.alias)
        return pb.GetModelVersionByAliasResponse(model_version=version)
