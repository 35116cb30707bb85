"""``mlgrid.register_model``: register a logged model under a name, as MLflow's fluent API does."""

from __future__ import annotations

import contextlib
from typing import Any

from mlgrid.exceptions import ResourceAlreadyExists
from mlgrid.models import get_model_version_for_uri, is_models_uri
from mlgrid.registry.entities import ModelVersion

#: MLflow's default wait for a version to become READY (ours are READY at once).
DEFAULT_AWAIT_MAX_SLEEP_SECONDS = 300


def _run_id_of(model_uri: str) -> str | None:
    if model_uri.startswith("runs:/"):
        return model_uri[len("runs:/") :].lstrip("/").split("/", 1)[0] or None
    return None


def register_model(
    model_uri: str,
    name: str,
    tags: dict[str, Any] | None = None,
    await_registration_for: int = DEFAULT_AWAIT_MAX_SLEEP_SECONDS,
    *,
    client: Any = None,
) -> ModelVersion:
    """Creates registered model ``name`` if it does not exist, then a new version of it.

    ``model_uri`` is a ``runs:/<run_id>/<path>`` URI (as returned by ``log_model``), a
    ``models:/`` URI (the new version reuses that version's files) or an artifact location.
    """
    if isinstance(tags, int) and not isinstance(tags, bool):
        # MLflow's positional order is (model_uri, name, await_registration_for): accept it.
        await_registration_for, tags = tags, None
    if client is None:
        from mlgrid.fluent import state

        client = state.client()
    with contextlib.suppress(ResourceAlreadyExists):
        client.create_registered_model(name)
    source = model_uri
    if is_models_uri(model_uri):
        # Pin aliases, stages and "latest" to the version they name right now.
        version = get_model_version_for_uri(model_uri, client)
        source = f"models:/{version.name}/{version.version}"
    created: ModelVersion = client.create_model_version(
        name,
        source,
        run_id=_run_id_of(model_uri),
        tags=tags,
        await_creation_for=await_registration_for,
    )
    return created
