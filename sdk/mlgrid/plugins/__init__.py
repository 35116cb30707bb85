"""Plugin interfaces and discovery: backends found through entry points, keyed by URI scheme.

Entry-point groups (MLflow's, renamed):

===================================  ==============================  ==========================
group                                name                            value
===================================  ==============================  ==========================
``mlgrid.tracking_store``            tracking/store URI scheme       AbstractTrackingStore
``mlgrid.artifact_repository``       artifact URI scheme             ArtifactRepository
``mlgrid.model_registry_store``      registry/store URI scheme       AbstractRegistryStore
``mlgrid.project_backend``           backend name                    ProjectBackend
``mlgrid.run_context_provider``      (unused)                        RunContextProvider
``mlgrid.request_header_provider``   (unused)                        RequestHeaderProvider
===================================  ==============================  ==========================

The six interfaces are importable from here. They are loaded on first access, so that
``from mlgrid.plugins import SchemeRegistry`` (which every service does at import) does not
pull in every area of the SDK. See docs/plugins.md for writing, packaging and serving plugins.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlgrid.plugins.headers import RequestHeaderProvider
from mlgrid.plugins.registry import (
    ENTRY_POINT_GROUPS,
    PluginLoadFailure,
    SchemeRegistry,
    UnknownSchemeError,
    load_providers,
)

if TYPE_CHECKING:
    from mlgrid.artifacts.repository import ArtifactRepository
    from mlgrid.context.abstract import RunContextProvider
    from mlgrid.projects.backend import ProjectBackend, SubmittedRun
    from mlgrid.registry.store import AbstractRegistryStore
    from mlgrid.store.tracking_store import AbstractTrackingStore

#: Interfaces other areas define, re-exported here: name -> module.
_INTERFACES: dict[str, str] = {
    "AbstractTrackingStore": "mlgrid.store.tracking_store",
    "ArtifactRepository": "mlgrid.artifacts.repository",
    "AbstractRegistryStore": "mlgrid.registry.store",
    "RunContextProvider": "mlgrid.context.abstract",
    "ProjectBackend": "mlgrid.projects.backend",
    "SubmittedRun": "mlgrid.projects.backend",
}


def __getattr__(name: str) -> Any:
    module = _INTERFACES.get(name)
    if module is None:
        raise AttributeError(f"module 'mlgrid.plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ENTRY_POINT_GROUPS",
    "AbstractRegistryStore",
    "AbstractTrackingStore",
    "ArtifactRepository",
    "PluginLoadFailure",
    "ProjectBackend",
    "RequestHeaderProvider",
    "RunContextProvider",
    "SchemeRegistry",
    "SubmittedRun",
    "UnknownSchemeError",
    "load_providers",
]
