"""MLflow's model-registry store for ``mlgrid://host:port``: each method is one SDK call.

MLflow finds this class through the ``mlflow.model_registry_store`` entry point. Sources and
download URIs cross the boundary through ``uris``: MLflow is shown wrapped artifact URIs, mlgrid
stores its own.
"""

from __future__ import annotations

from typing import Any

from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import (
    SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
)
from mlflow.store.model_registry.abstract_store import AbstractStore

from mlgrid.client import Client

from . import entities as convert
from .clients import client_for
from .errors import mlflow_errors
from .uris import parse_store_uri, unwrap_artifact_uri, wrap_artifact_uri


class MlgridRegistryStore(AbstractStore):
    """MLflow's model-registry store interface over an mlgrid gateway."""

    @mlflow_errors
    def __init__(self, store_uri: str, tracking_uri: str | None = None, **_: Any) -> None:
        super().__init__(store_uri=store_uri, tracking_uri=tracking_uri)
        self._gateway = parse_store_uri(store_uri)
        self._client: Client = client_for(self._gateway)

    # -- registered models -----------------------------------------------------------------

    @mlflow_errors
    def create_registered_model(
        self,
        name: str,
        tags: list[RegisteredModelTag] | None = None,
        description: str | None = None,
        deployment_job_id: str | None = None,
    ) -> RegisteredModel:
        created = self._client.create_registered_model(
            name, {t.key: t.value for t in tags or []}, description
        )
        return convert.registered_model(self._gateway, created)

    @mlflow_errors
    def update_registered_model(
        self, name: str, description: str | None, deployment_job_id: str | None = None
    ) -> RegisteredModel:
        updated = self._client.update_registered_model(name, description)
        return convert.registered_model(self._gateway, updated)

    @mlflow_errors
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        renamed = self._client.rename_registered_model(name, new_name)
        return convert.registered_model(self._gateway, renamed)

    @mlflow_errors
    def delete_registered_model(self, name: str) -> None:
        self._client.delete_registered_model(name)

    @mlflow_errors
    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        page = self._client.search_registered_models(
            filter_string, max_results, order_by, page_token
        )
        return PagedList([convert.registered_model(self._gateway, m) for m in page], page.token)

    @mlflow_errors
    def get_registered_model(self, name: str) -> RegisteredModel:
        return convert.registered_model(self._gateway, self._client.get_registered_model(name))

    @mlflow_errors
    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        versions = self._client.get_latest_versions(name, stages)
        return [convert.model_version(self._gateway, v) for v in versions]

    @mlflow_errors
    def set_registered_model_tag(self, name: str, tag: RegisteredModelTag) -> None:
        self._client.set_registered_model_tag(name, tag.key, tag.value)

    @mlflow_errors
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._client.delete_registered_model_tag(name, key)

    # -- model versions --------------------------------------------------------------------

    @mlflow_errors
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: list[ModelVersionTag] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> ModelVersion:
        created = self._client.create_model_version(
            name,
            unwrap_artifact_uri(source) or "",
            run_id=run_id,
            tags={t.key: t.value for t in tags or []},
            run_link=run_link,
            description=description,
            model_id=model_id,
        )
        return convert.model_version(self._gateway, created)

    @mlflow_errors
    def update_model_version(
        self, name: str, version: str | int, description: str | None
    ) -> ModelVersion:
        updated = self._client.update_model_version(name, version, description)
        return convert.model_version(self._gateway, updated)

    @mlflow_errors
    def transition_model_version_stage(
        self, name: str, version: str | int, stage: str, archive_existing_versions: bool
    ) -> ModelVersion:
        moved = self._client.transition_model_version_stage(
            name, version, stage, archive_existing_versions
        )
        return convert.model_version(self._gateway, moved)

    @mlflow_errors
    def delete_model_version(self, name: str, version: str | int) -> None:
        self._client.delete_model_version(name, version)

    @mlflow_errors
    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return convert.model_version(self._gateway, self._client.get_model_version(name, version))

    @mlflow_errors
    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        uri = self._client.get_model_version_download_uri(name, version)
        return wrap_artifact_uri(self._gateway, uri) or uri

    @mlflow_errors
    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        page = self._client.search_model_versions(filter_string, max_results, order_by, page_token)
        return PagedList([convert.model_version(self._gateway, v) for v in page], page.token)

    @mlflow_errors
    def set_model_version_tag(self, name: str, version: str | int, tag: ModelVersionTag) -> None:
        self._client.set_model_version_tag(name, version, tag.key, tag.value)

    @mlflow_errors
    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        self._client.delete_model_version_tag(name, version, key)

    # -- aliases ---------------------------------------------------------------------------

    @mlflow_errors
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        self._client.set_registered_model_alias(name, alias, version)

    @mlflow_errors
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._client.delete_registered_model_alias(name, alias)

    @mlflow_errors
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        found = self._client.get_model_version_by_alias(name, alias)
        return convert.model_version(self._gateway, found)
