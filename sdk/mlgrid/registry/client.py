"""The registry part of :class:`mlgrid.client.Client`: MlflowClient's registry methods over gRPC.

Built from a transport alone, so it works without the rest of the client
(``RegistryClient(transport)``); ``Client`` exposes each method under the same name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_service_pb2 as pb
from mlgrid.entities.paged_list import PagedList
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.limits import SEARCH_MODELS_DEFAULT, SEARCH_VERSIONS_DEFAULT
from mlgrid.registry.entities import ModelVersion, RegisteredModel

if TYPE_CHECKING:
    from mlgrid.transport import Transport


def _tags(tags: dict[str, Any] | None) -> list[common_pb2.Tag]:
    return [common_pb2.Tag(key=str(k), value=str(v)) for k, v in (tags or {}).items()]


def _order_by(order_by: list[str] | str | None) -> list[str]:
    if order_by is None:
        return []
    return [order_by] if isinstance(order_by, str) else list(order_by)


class RegistryClient:
    """Registered models and their versions, aliases and tags."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _registry_call(self, method_name: str, request: Any) -> Any:
        stub = self._transport.registry
        return self._transport.call(getattr(stub, method_name), request)

    # --- registered models -------------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        """Creates a registered model; RESOURCE_ALREADY_EXISTS if the name is taken."""
        request = pb.CreateRegisteredModelRequest(
            name=name, tags=_tags(tags), description=description or ""
        )
        return RegisteredModel.from_proto(
            self._registry_call("CreateRegisteredModel", request).registered_model
        )

    def get_registered_model(self, name: str) -> RegisteredModel:
        response = self._registry_call(
            "GetRegisteredModel", pb.GetRegisteredModelRequest(name=name)
        )
        return RegisteredModel.from_proto(response.registered_model)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        request = pb.RenameRegisteredModelRequest(name=name, new_name=new_name)
        return RegisteredModel.from_proto(
            self._registry_call("RenameRegisteredModel", request).registered_model
        )

    def update_registered_model(self, name: str, description: str | None = None) -> RegisteredModel:
        request = pb.UpdateRegisteredModelRequest(name=name, description=description or "")
        return RegisteredModel.from_proto(
            self._registry_call("UpdateRegisteredModel", request).registered_model
        )

    def delete_registered_model(self, name: str) -> None:
        self._registry_call("DeleteRegisteredModel", pb.DeleteRegisteredModelRequest(name=name))

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODELS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        request = pb.SearchRegisteredModelsRequest(
            filter=filter_string or "",
            max_results=max_results,
            order_by=_order_by(order_by),
            page_token=page_token or "",
        )
        response = self._registry_call("SearchRegisteredModels", request)
        return PagedList(
            [RegisteredModel.from_proto(m) for m in response.registered_models],
            response.next_page_token,
        )

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        """The latest version per stage (every stage when ``stages`` is None)."""
        request = pb.GetLatestVersionsRequest(name=name, stages=list(stages or []))
        response = self._registry_call("GetLatestVersions", request)
        return [ModelVersion.from_proto(v) for v in response.model_versions]

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        request = pb.SetRegisteredModelTagRequest(name=name, key=key, value=str(value))
        self._registry_call("SetRegisteredModelTag", request)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        request = pb.DeleteRegisteredModelTagRequest(name=name, key=key)
        self._registry_call("DeleteRegisteredModelTag", request)

    # --- model versions ----------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = 300,
        model_id: str | None = None,
    ) -> ModelVersion:
        """Creates the model's next version from ``source`` (a runs:/ URI, a location, or
        MLflow 3's ``models:/<model_id>`` of a logged model). ``model_id`` links the version to
        the logged model it was made from.

        Versions are READY when created, so ``await_creation_for`` has nothing to wait for; it
        is accepted for MlflowClient compatibility.
        """
        request = pb.CreateModelVersionRequest(
            name=name,
            source=source,
            run_id=run_id or "",
            tags=_tags(tags),
            run_link=run_link or "",
            description=description or "",
            model_id=model_id or "",
        )
        return ModelVersion.from_proto(
            self._registry_call("CreateModelVersion", request).model_version
        )

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        request = pb.GetModelVersionRequest(name=name, version=str(version))
        return ModelVersion.from_proto(
            self._registry_call("GetModelVersion", request).model_version
        )

    def update_model_version(
        self, name: str, version: str | int, description: str | None = None
    ) -> ModelVersion:
        request = pb.UpdateModelVersionRequest(
            name=name, version=str(version), description=description or ""
        )
        return ModelVersion.from_proto(
            self._registry_call("UpdateModelVersion", request).model_version
        )

    def delete_model_version(self, name: str, version: str | int) -> None:
        request = pb.DeleteModelVersionRequest(name=name, version=str(version))
        self._registry_call("DeleteModelVersion", request)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_VERSIONS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        request = pb.SearchModelVersionsRequest(
            filter=filter_string or "",
            max_results=max_results,
            order_by=_order_by(order_by),
            page_token=page_token or "",
        )
        response = self._registry_call("SearchModelVersions", request)
        return PagedList(
            [ModelVersion.from_proto(v) for v in response.model_versions], response.next_page_token
        )

    def transition_model_version_stage(
        self, name: str, version: str | int, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        request = pb.TransitionModelVersionStageRequest(
            name=name,
            version=str(version),
            stage=stage,
            archive_existing_versions=archive_existing_versions,
        )
        return ModelVersion.from_proto(
            self._registry_call("TransitionModelVersionStage", request).model_version
        )

    def _version_or_stage(self, name: str, version: str | int | None, stage: str | None) -> str:
        # MlflowClient lets tag calls name the latest version of a stage instead of a version.
        if version is not None and stage is not None:
            raise InvalidParameterValue("give version or stage, not both")
        if version is not None:
            return str(version)
        if stage is None:
            raise InvalidParameterValue("version (or stage) is required")
        latest = self.get_latest_versions(name, [stage])
        if not latest:
            raise ResourceDoesNotExist(
                f"registered model {name!r} has no version in stage {stage!r}"
            )
        return latest[0].version

    def set_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        value: Any = None,
        stage: str | None = None,
    ) -> None:
        request = pb.SetModelVersionTagRequest(
            name=name,
            version=self._version_or_stage(name, version, stage),
            key=key or "",
            value="" if value is None else str(value),
        )
        self._registry_call("SetModelVersionTag", request)

    def delete_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        stage: str | None = None,
    ) -> None:
        request = pb.DeleteModelVersionTagRequest(
            name=name, version=self._version_or_stage(name, version, stage), key=key or ""
        )
        self._registry_call("DeleteModelVersionTag", request)

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        request = pb.GetModelVersionDownloadUriRequest(name=name, version=str(version))
        return str(self._registry_call("GetModelVersionDownloadUri", request).artifact_uri)

    # --- aliases -----------------------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        request = pb.SetRegisteredModelAliasRequest(name=name, alias=alias, version=str(version))
        self._registry_call("SetRegisteredModelAlias", request)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        request = pb.DeleteRegisteredModelAliasRequest(name=name, alias=alias)
        self._registry_call("DeleteRegisteredModelAlias", request)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        request = pb.GetModelVersionByAliasRequest(name=name, alias=alias)
        return ModelVersion.from_proto(
            self._registry_call("GetModelVersionByAlias", request).model_version
        )
