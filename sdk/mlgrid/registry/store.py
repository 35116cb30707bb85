"""The model-registry store interface that the registry service serves and plugins implement.

Entities are the generated protobuf messages of :mod:`mlgrid.api.registry.v1.registry_pb2`
(``RegisteredModel``, ``ModelVersion``), so a store's answer goes on the wire unchanged.

What the service guarantees before calling a store (so a store need not re-check):

- names, tag keys, tag values and aliases are validated (lengths, characters, reserved aliases);
- ``stage`` arguments are canonical: one of :data:`STAGES` (``"None"``, ``"Staging"``, ...);
- a version's ``source`` was checked (no path climbing out of a run's artifact root) and, for
  ``runs:/`` sources, ``storage_location`` holds the resolved artifact URI.

What a store must guarantee:

- version numbers are ``1, 2, 3, ...`` per model, unique and without gaps even when versions are
  created concurrently (numbers of deleted versions are not reused);
- renaming a model carries its versions, tags and aliases along; deleting a model removes them;
- deleting a version removes its tags and the aliases pointing at it;
- missing entities raise :class:`mlgrid.exceptions.ResourceDoesNotExist`, duplicate names
  :class:`~mlgrid.exceptions.ResourceAlreadyExists`, bad filters or orderings
  :class:`~mlgrid.exceptions.InvalidParameterValue`.

A plugin registers a subclass under the entry-point group ``mlgrid.model_registry_store``; the
entry-point name is the store URI scheme and the class is built as ``cls(store_uri)``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.limits import SEARCH_MODELS_DEFAULT, SEARCH_VERSIONS_DEFAULT

#: Stages a version can be in, in MLflow's spelling (the service canonicalises user input).
STAGE_NONE = "None"
STAGE_STAGING = "Staging"
STAGE_PRODUCTION = "Production"
STAGE_ARCHIVED = "Archived"
STAGES: tuple[str, ...] = (STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION, STAGE_ARCHIVED)


RegisteredModel = registry_pb2.RegisteredModel
ModelVersion = registry_pb2.ModelVersion


@dataclass
class Page:
    """One page of search results and the opaque token of the next page ("" on the last)."""

    items: list = field(default_factory=list)
    next_page_token: str = ""


class AbstractRegistryStore(abc.ABC):
    """A model registry backend. Every method is called with validated, canonical inputs."""

    # --- registered models -------------------------------------------------------------------

    @abc.abstractmethod
    def create_registered_model(
        self, name: str, tags: Sequence[tuple[str, str]] = (), description: str = ""
    ) -> RegisteredModel:
        """Creates a model; ResourceAlreadyExists when ``name`` is taken."""

    @abc.abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """The model with its tags, aliases and latest version per stage."""

    @abc.abstractmethod
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Renames a model; its versions, tags and aliases follow."""

    @abc.abstractmethod
    def update_registered_model(self, name: str, description: str) -> RegisteredModel:
        """Replaces the description and bumps ``last_updated_timestamp``."""

    @abc.abstractmethod
    def delete_registered_model(self, name: str) -> None:
        """Hard-deletes a model with its versions, tags and aliases."""

    @abc.abstractmethod
    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = SEARCH_MODELS_DEFAULT,
        order_by: Sequence[str] = (),
        page_token: str = "",
    ) -> Page:
        """Models matching ``filter_string`` (``name`` with = != LIKE ILIKE IN, ``tags.<key>``),
        ordered by ``name`` / ``creation_timestamp`` / ``last_updated_timestamp`` (default
        ``name ASC``)."""

    @abc.abstractmethod
    def get_latest_versions(self, name: str, stages: Sequence[str] = ()) -> list[ModelVersion]:
        """The highest version in each of ``stages`` (every stage when empty) that has one."""

    @abc.abstractmethod
    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        """Sets (or overwrites) a model tag."""

    @abc.abstractmethod
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Deletes a model tag (a missing tag is not an error; a missing model is)."""

    # --- model versions ----------------------------------------------------------------------

    @abc.abstractmethod
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str = "",
        tags: Sequence[tuple[str, str]] = (),
        run_link: str = "",
        description: str = "",
        user_id: str = "",
        storage_location: str = "",
        model_id: str = "",
    ) -> ModelVersion:
        """Creates the model's next version (status READY, stage None).

        ``storage_location`` is where the files really are (``source`` resolved); the download
        URI is ``storage_location`` when set, else ``source``. ``model_id`` is the MLflow 3
        logged model the version is made from ("" when none); it comes back as
        ``ModelVersion.model_id``. (The service passes it only when set, so a store written
        before it keeps working for versions without one.)
        """

    @abc.abstractmethod
    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """One version with its tags and aliases."""

    @abc.abstractmethod
    def update_model_version(self, name: str, version: int, description: str) -> ModelVersion:
        """Replaces the description."""

    @abc.abstractmethod
    def delete_model_version(self, name: str, version: int) -> None:
        """Deletes a version with its tags and the aliases pointing at it."""

    @abc.abstractmethod
    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = SEARCH_VERSIONS_DEFAULT,
        order_by: Sequence[str] = (),
        page_token: str = "",
    ) -> Page:
        """Versions matching ``filter_string`` (``name``, ``version_number``, ``run_id``,
        ``source_path``, ``tags.<key>``), ordered by ``name`` / ``version_number`` /
        ``creation_timestamp`` / ``last_updated_timestamp`` (default ``name ASC,
        version_number DESC``)."""

    @abc.abstractmethod
    def transition_model_version_stage(
        self, name: str, version: int, stage: str, archive_existing_versions: bool
    ) -> ModelVersion:
        """Moves a version to ``stage``; with ``archive_existing_versions`` the other versions in
        that stage move to Archived (only allowed for Staging and Production)."""

    @abc.abstractmethod
    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Sets (or overwrites) a version tag."""

    @abc.abstractmethod
    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        """Deletes a version tag (a missing tag is not an error; a missing version is)."""

    @abc.abstractmethod
    def get_model_version_download_uri(self, name: str, version: int) -> str:
        """Where the version's files can be downloaded from."""

    # --- aliases -----------------------------------------------------------------------------

    @abc.abstractmethod
    def set_registered_model_alias(self, name: str, alias: str, version: int) -> None:
        """Points ``alias`` at ``version`` (moving it if it pointed elsewhere)."""

    @abc.abstractmethod
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Deletes an alias (a missing alias is not an error, as in MLflow)."""

    @abc.abstractmethod
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points at; ResourceDoesNotExist when it points nowhere."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores have nothing to release
        """Releases connections; the store is not used afterwards."""
