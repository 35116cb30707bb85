"""Models: signatures (``infer_signature``, ``ModelSignature``) and ``models:/`` URIs.

Signatures live in :mod:`mlgrid.models.signature` (MLflow's JSON form), inference in
:mod:`mlgrid.models.inference`, input checking in :mod:`mlgrid.models.enforcement`, the scoring
server in :mod:`mlgrid.models.serving`.

``models:/`` URIs: which registered model version they name, and where its files are.

Forms (MLflow's)::

    models:/<name>/<version>       a version number
    models:/<name>/<stage>         the latest version in a stage (None/Staging/Production/Archived)
    models:/<name>/latest          the highest version number
    models:/<name>@<alias>         the version an alias points at

Each may be followed by ``/<path>`` inside the model's files. :func:`resolve_model_uri` turns
any of them into the artifact URI of the files (the version's download URI), which is what
``mlgrid.artifacts.download_artifacts`` and ``mlgrid.pyfunc.load_model`` call for ``models:/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .inference import infer_schema, infer_signature
from .signature import ColSpec, ModelSignature, ParamSpec, Schema, TensorSpec

if TYPE_CHECKING:
    from mlgrid.client import Client
    from mlgrid.registry.client import RegistryClient
    from mlgrid.registry.entities import ModelVersion

__all__ = [
    "ColSpec",
    "ModelSignature",
    "ModelUri",
    "ParamSpec",
    "Schema",
    "TensorSpec",
    "get_model_version_for_uri",
    "infer_schema",
    "infer_signature",
    "is_logged_model_uri",
    "is_models_uri",
    "parse_model_uri",
    "resolve_model_uri",
]

SCHEME = "models:/"
_STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}


@dataclass(frozen=True)
class ModelUri:
    """A parsed ``models:/`` URI: exactly one of version, stage, alias or latest is set."""

    name: str
    version: str | None = None
    stage: str | None = None
    alias: str | None = None
    latest: bool = False
    #: Path inside the model's files ('' for the whole model).
    path: str = ""


def is_models_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


#: MLflow 3's logged models: models:/<model_id>, one segment without '@' (m-<32 hex> in MLflow).
_LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")


def is_logged_model_uri(uri: str) -> bool:
    """True for ``models:/<model_id>`` (an MLflow 3 logged model, not a registered one)."""
    rest = uri[len(SCHEME) :].strip("/") if is_models_uri(uri) else ""
    return bool(_LOGGED_MODEL_ID.match(rest))


def _bad(uri: str, why: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"invalid model URI {uri!r}: {why}; expected models:/<name>/<version|stage|latest> or "
        "models:/<name>@<alias>"
    )


def parse_model_uri(uri: str) -> ModelUri:
    """Parses a ``models:/`` URI (InvalidParameterValue, naming the URI, when malformed)."""
    if not is_models_uri(uri):
        raise _bad(uri, "it does not start with models:/")
    rest = uri[len(SCHEME) :]
    if rest.startswith("/"):  # models:///name/1 is also accepted by MLflow
        rest = rest.lstrip("/")
    head, _, path = rest.partition("/")
    if "@" in head:
        name, _, alias = head.partition("@")
        if not name or not alias:
            raise _bad(uri, "both a name and an alias are needed around '@'")
        return ModelUri(name=name, alias=alias, path=path.strip("/"))
    name = head
    reference, _, path = path.partition("/")
    if not name or not reference:
        raise _bad(uri, "it names no version, stage or alias")
    path = path.strip("/")
    if reference.isdigit():
        return ModelUri(name=name, version=reference, path=path)
    if reference.lower() == "latest":
        return ModelUri(name=name, latest=True, path=path)
    stage = _STAGES.get(reference.lower())
    if stage is None:
        raise _bad(uri, f"{reference!r} is not a version number, a stage or 'latest'")
    return ModelUri(name=name, stage=stage, path=path)


def _client(
    client: RegistryClient | Client | None, tracking_uri: str | None, registry_uri: str | None
):  # type: ignore[no-untyped-def]
    if client is not None:
        return client
    if tracking_uri is None and registry_uri is None:
        from mlgrid.fluent import state  # the process's shared client for the current URIs

        return state.client()
    from mlgrid.client import Client

    return Client(tracking_uri=tracking_uri, registry_uri=registry_uri)


def get_model_version_for_uri(
    uri: str | ModelUri,
    client: RegistryClient | Client | None = None,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> ModelVersion:
    """The registered model version a ``models:/`` URI names."""
    parsed = parse_model_uri(uri) if isinstance(uri, str) else uri
    registry = _client(client, tracking_uri, registry_uri)
    if parsed.version is not None:
        version: ModelVersion = registry.get_model_version(parsed.name, parsed.version)
        return version
    if parsed.alias is not None:
        by_alias: ModelVersion = registry.get_model_version_by_alias(parsed.name, parsed.alias)
        return by_alias
    stages = None if parsed.latest else [parsed.stage]
    candidates = registry.get_latest_versions(parsed.name, stages)
    if not candidates:
        where = "any stage" if parsed.latest else f"stage {parsed.stage!r}"
        raise ResourceDoesNotExist(f"registered model {parsed.name!r} has no version in {where}")
    return max(candidates, key=lambda v: int(v.version))


def resolve_model_uri(
    uri: str,
    client: RegistryClient | Client | None = None,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> str:
    """The artifact URI where the files a ``models:/`` URI names live (plus its sub-path).

    This is the hook for every place that accepts an artifact URI: call it for ``models:/``
    URIs, then download the result like any other artifact URI.
    """
    parsed = parse_model_uri(uri)
    registry = _client(client, tracking_uri, registry_uri)
    version = get_model_version_for_uri(parsed, registry)
    location: str = registry.get_model_version_download_uri(parsed.name, version.version)
    if parsed.path:
        location = location.rstrip("/") + "/" + parsed.path
    return location
