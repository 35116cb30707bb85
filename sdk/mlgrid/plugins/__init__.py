"""Plugin discovery: backends found through entry points, keyed by URI scheme (or name).

Entry-point groups (MLflow's, renamed):

==============================  ========================================================
group                           name → value
==============================  ========================================================
``mlgrid.tracking_store``       URI scheme → AbstractTrackingStore subclass
``mlgrid.artifact_repository``  URI scheme → ArtifactRepository subclass
``mlgrid.model_registry_store`` URI scheme → AbstractRegistryStore subclass
``mlgrid.project_backend``      backend name → ProjectBackend subclass
``mlgrid.run_context_provider`` (unused) → RunContextProvider subclass
``mlgrid.request_header_provider`` (unused) → RequestHeaderProvider subclass
==============================  ========================================================
"""

from mlgrid.plugins.registry import (
    ENTRY_POINT_GROUPS,
    PluginLoadFailure,
    SchemeRegistry,
    UnknownSchemeError,
    load_providers,
)

__all__ = [
    "ENTRY_POINT_GROUPS",
    "PluginLoadFailure",
    "SchemeRegistry",
    "UnknownSchemeError",
    "load_providers",
]
