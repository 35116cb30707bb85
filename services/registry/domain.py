"""Registry rules between the servicer and the store: validation, canonical stages, aliases,
source checks. The store receives only valid, canonical input (see AbstractRegistryStore)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import (
    MAX_ALIAS_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_MODEL_NAME_LENGTH,
    MAX_USER_ID_LENGTH,
    SEARCH_MODELS_DEFAULT,
    SEARCH_MODELS_MAX,
    SEARCH_VERSIONS_DEFAULT,
    SEARCH_VERSIONS_MAX,
)
from mlgrid.registry.store import (
    STAGES,
    AbstractRegistryStore,
    Page,
)
from mlgrid_services.common.location_policy import DeploymentPolicy
from mlgrid_services.common.validation import (
    shorten,
    validate_length,
    validate_registry_tag,
)

from .sources import FilesLookup, LoggedModelLookup, RunArtifactLookup, check_source

if TYPE_CHECKING:
    from .source_access import SourceAccess

log = logging.getLogger(__name__)

_ALIAS = re.compile(r"^[\w-]*$")
_LOGGED_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w-]{0,35}$")
_RESERVED_VERSION_ALIAS = re.compile(r"^v\d+$", re.IGNORECASE)
_STAGES_BY_LOWER = {stage.lower(): stage for stage in STAGES}


def validate_model_name(name: str, field: str = "name") -> str:
    if not name or not name.strip():
        raise InvalidParameterValue(
            f"Invalid {field} '': a registered model name must not be empty"
        )
    validate_length(name, MAX_MODEL_NAME_LENGTH, field)
    for ch in ("/", ":"):
        if ch in name:
            raise InvalidParameterValue(
                f"Invalid {field} {shorten(name)}: a registered model name may not contain "
                f"{ch!r} (it would be ambiguous in models:/ URIs)"
            )
    return name


def parse_version(version: str) -> int:
    """A version number from its string form ("3"); refuses anything but a positive integer."""
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise InvalidParameterValue(
            f"Invalid version {shorten(version)}: a model version must be a positive integer "
            "such as '1'"
        )
    return int(text)


def canonical_stage(stage: str) -> str:
    """'staging' -> 'Staging'; unknown stages are refused with the allowed list."""
    found = _STAGES_BY_LOWER.get((stage or "").strip().lower())
    if found is None:
        raise InvalidParameterValue(
            f"Invalid model version stage {shorten(stage)}: must be one of {', '.join(STAGES)} "
            "(case-insensitive)"
        )
    return found


def validate_alias(alias: str) -> str:
    if not alias:
        raise InvalidParameterValue("Invalid alias '': a registered model alias must not be empty")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameterValue(
            f"Invalid alias {shorten(alias)}: at most {MAX_ALIAS_LENGTH} characters, got {len(alias)}"
        )
    if not _ALIAS.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias {shorten(alias)}: only letters, digits, '_' and '-' are allowed"
        )
    if alias.lower() == "latest" or _RESERVED_VERSION_ALIAS.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias {alias!r}: 'latest' (any case) and 'v<number>' are reserved, "
            "because models:/ URIs use them to name versions"
        )
    return alias


def validate_tags(tags: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    checked = []
    for key, value in tags:
        validate_registry_tag(key, value)
        checked.append((key, value))
    return checked


def page_size(requested: int, default: int, limit: int) -> int:
    if requested == 0:
        return default
    if requested < 0 or requested > limit:
        raise InvalidParameterValue(
            f"Invalid max_results {requested}: must be between 1 and {limit}"
        )
    return requested


class Registry:
    """The registry's operations, with MLflow's rules, over any AbstractRegistryStore."""

    def __init__(
        self,
        store: AbstractRegistryStore,
        run_artifact_uri: RunArtifactLookup,
        location_policy: DeploymentPolicy | None = None,
        source_access: SourceAccess | None = None,
    ) -> None:
        #: Which locations a version's source may name (None: any).
        self.location_policy = location_policy
        #: The caller's permissions on a version's source (None: auth off).
        self.source_access = source_access
        self.store = store
        self.run_artifact_uri = run_artifact_uri

    # registered models
    def create_registered_model(
        self, name: str, tags: Iterable[tuple[str, str]], description: str
    ) -> registry_pb2.RegisteredModel:
        validate_model_name(name)
        validate_length(description, MAX_DESCRIPTION_LENGTH, "description")
        return self.store.create_registered_model(name, validate_tags(tags), description)

    def get_registered_model(self, name: str) -> registry_pb2.RegisteredModel:
        return self.store.get_registered_model(validate_model_name(name))

    def rename_registered_model(self, name: str, new_name: str) -> registry_pb2.RegisteredModel:
        validate_model_name(name)
        validate_model_name(new_name, "new_name")
        if name == new_name:
            return self.store.get_registered_model(name)
        return self.store.rename_registered_model(name, new_name)

    def update_registered_model(self, name: str, description: str) -> registry_pb2.RegisteredModel:
        validate_length(description, MAX_DESCRIPTION_LENGTH, "description")
        return self.store.update_registered_model(validate_model_name(name), description)

    def delete_registered_model(self, name: str) -> None:
        self.store.delete_registered_model(validate_model_name(name))

    def search_registered_models(
        self, filter_string: str, max_results: int, order_by: Sequence[str], page_token: str
    ) -> Page:
        size = page_size(max_results, SEARCH_MODELS_DEFAULT, SEARCH_MODELS_MAX)
        return self.store.search_registered_models(filter_string, size, list(order_by), page_token)

    def get_latest_versions(
        self, name: str, stages: Sequence[str]
    ) -> list[registry_pb2.ModelVersion]:
        canonical = [canonical_stage(s) for s in stages]
        return self.store.get_latest_versions(validate_model_name(name), canonical)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        validate_registry_tag(key, value)
        self.store.set_registered_model_tag(validate_model_name(name), key, value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.store.delete_registered_model_tag(validate_model_name(name), key)

    # model versions
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str,
        tags: Iterable[tuple[str, str]],
        run_link: str,
        description: str,
        user_id: str = "",
        model_id: str = "",
    ) -> registry_pb2.ModelVersion:
        validate_model_name(name)
        checked_tags = validate_tags(tags)
        validate_length(description, MAX_DESCRIPTION_LENGTH, "description")
        validate_length(user_id, MAX_USER_ID_LENGTH, "user_id")
        policy = self.location_policy.current() if self.location_policy is not None else None
        access = self.source_access
        if access is not None and run_id:
            access.check_run(run_id)  # before its artifact root is looked at
        checked = check_source(source, run_id, self.run_artifact_uri, policy)
        if access is not None and checked.run_id and checked.run_id != run_id:
            access.check_run(checked.run_id)
        storage = checked.storage_location
        if checked.run_id or checked.source_is_local:
            self._require_files(source, storage or checked.source)
        if checked.model_version is not None:
            if access is not None:
                access.check_model_version(*checked.model_version)
            storage = self.store.get_model_version_download_uri(*checked.model_version)
        if checked.logged_model_id and model_id and model_id != checked.logged_model_id:
            raise InvalidParameterValue(
                f"model_id {shorten(model_id)} differs from the logged model named in source "
                f"{shorten(source)}; leave model_id empty or make them agree"
            )
        model_id = model_id or checked.logged_model_id
        model_experiment = ""
        if model_id:
            # The model must exist; its files are the version's when the source names it, and
            # its run is the version's unless one was given (as MLflow does).
            location, source_run, model_experiment = self._logged_model(model_id)
            if access is not None:
                access.check_logged_model(model_id, model_experiment)
            if checked.logged_model_id:
                storage = location
            run_id = run_id or source_run
        extra = {"model_id": model_id} if model_id else {}
        created = self.store.create_model_version(
            name,
            checked.source,
            run_id or checked.run_id,
            checked_tags,
            run_link,
            description,
            user_id,
            storage,
            **extra,
        )
        if model_id and isinstance(self.run_artifact_uri, LoggedModelLookup):
            if access is None or access.may_record_on(model_experiment):
                _record_on_logged_model(self.run_artifact_uri, model_id, created)
            else:
                log.info(
                    "model version %s/%s not listed on logged model %s: the caller may only "
                    "read experiment %s",
                    created.name,
                    created.version,
                    model_id,
                    model_experiment,
                )
        return created

    def _require_files(self, source: str, location: str) -> None:
        """Refuses a source with no files: registered, it would only fail when loaded."""
        lookup = self.run_artifact_uri
        if isinstance(lookup, FilesLookup) and not lookup.has_files(location):
            raise InvalidParameterValue(
                f"source {shorten(source)} has no files (nothing at {shorten(location)}); log "
                "the model's files (e.g. with log_model) before registering them"
            )

    def _logged_model(self, model_id: str) -> tuple[str, str, str]:
        if not _LOGGED_MODEL_ID.match(model_id):
            raise InvalidParameterValue(
                f"Invalid model_id {shorten(model_id)}: expected a logged model id such as "
                "m-<32 hexadecimal characters>"
            )
        if not isinstance(self.run_artifact_uri, LoggedModelLookup):
            raise InvalidParameterValue(
                "this registry cannot look up logged models (no tracking service to ask): "
                "register the model's runs:/ URI or artifact location instead"
            )
        return self.run_artifact_uri.logged_model(model_id)

    def get_model_version(self, name: str, version: str) -> registry_pb2.ModelVersion:
        return self.store.get_model_version(validate_model_name(name), parse_version(version))

    def update_model_version(
        self, name: str, version: str, description: str
    ) -> registry_pb2.ModelVersion:
        validate_length(description, MAX_DESCRIPTION_LENGTH, "description")
        return self.store.update_model_version(
            validate_model_name(name), parse_version(version), description
        )

    def delete_model_version(self, name: str, version: str) -> None:
        self.store.delete_model_version(validate_model_name(name), parse_version(version))

    def search_model_versions(
        self, filter_string: str, max_results: int, order_by: Sequence[str], page_token: str
    ) -> Page:
        size = page_size(max_results, SEARCH_VERSIONS_DEFAULT, SEARCH_VERSIONS_MAX)
        return self.store.search_model_versions(filter_string, size, list(order_by), page_token)

    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool
    ) -> registry_pb2.ModelVersion:
        return self.store.transition_model_version_stage(
            validate_model_name(name),
            parse_version(version),
            canonical_stage(stage),
            archive_existing_versions,
        )

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        validate_registry_tag(key, value)
        self.store.set_model_version_tag(
            validate_model_name(name), parse_version(version), key, value
        )

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self.store.delete_model_version_tag(validate_model_name(name), parse_version(version), key)

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        return self.store.get_model_version_download_uri(
            validate_model_name(name), parse_version(version)
        )

    # aliases
    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.store.set_registered_model_alias(
            validate_model_name(name), validate_alias(alias), parse_version(version)
        )

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.store.delete_registered_model_alias(validate_model_name(name), validate_alias(alias))

    def get_model_version_by_alias(self, name: str, alias: str) -> registry_pb2.ModelVersion:
        return self.store.get_model_version_by_alias(
            validate_model_name(name), validate_alias(alias)
        )


def _record_on_logged_model(
    lookup: LoggedModelLookup, model_id: str, created: registry_pb2.ModelVersion
) -> None:
    # The version is committed and is the answer; a failure to note it on the logged model
    # only leaves the model's registrations list short, so it is logged, not raised.
    try:
        lookup.record_version(model_id, created.name, created.version)
    except Exception as err:
        log.warning(
            "model version %s/%s was created but not listed on logged model %s: %s",
            created.name,
            created.version,
            model_id,
            err,
        )
