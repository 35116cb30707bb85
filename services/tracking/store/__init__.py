"""Tracking store implementations, chosen by the scheme of the store URI.

``STORE_CLASSES`` maps a built-in scheme to ``"module:Class"``; ``TRACKING_STORES`` adds the
plugins (entry-point group ``mlgrid.tracking_store``) over them. Classes are imported lazily so
an unused backend's drivers are never loaded.
"""

from __future__ import annotations

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry, UnknownSchemeError
from mlgrid.store.tracking_store import AbstractTrackingStore
from mlgrid.uris import uri_scheme

_SQL = "mlgrid_services.tracking.store.sql_store:SqlTrackingStore"

#: scheme → "module:Class" of the store serving it.
STORE_CLASSES: dict[str, str] = {
    "sqlite": _SQL,
    "postgresql": _SQL,
    "postgresql+psycopg": _SQL,
    "postgres": _SQL,
    "mysql": _SQL,
    "mariadb": _SQL,
}

#: Store classes by scheme: the built-ins, with installed plugins over them (a plugin may
#: replace a built-in scheme); a plugin that fails to import fails only its own scheme.
TRACKING_STORES: SchemeRegistry[AbstractTrackingStore] = SchemeRegistry(
    ENTRY_POINT_GROUPS["tracking_store"], "tracking store", {**STORE_CLASSES}
)


def store_class(uri: str) -> type[AbstractTrackingStore]:
    """The store class for ``uri``'s scheme; InvalidParameterValue naming the known ones."""
    scheme = uri_scheme(uri)
    try:
        return TRACKING_STORES.get(scheme)
    except UnknownSchemeError:
        known = ", ".join(TRACKING_STORES.schemes())
        raise InvalidParameterValue(
            f"Invalid tracking store URI {uri[:200]!r}: unknown scheme {scheme!r}; known schemes "
            f"are {known}"
        ) from None


def open_store(uri: str, default_artifact_root: str) -> AbstractTrackingStore:
    """Opens (and migrates, for SQL) the tracking store at ``uri``."""
    cls = store_class(uri)
    return cls(uri, default_artifact_root)  # type: ignore[call-arg]
