"""Tracking store implementations, chosen by the scheme of the store URI.

``STORE_CLASSES`` maps a scheme to ``"module:Class"``; plugins (entry-point group
``mlgrid.tracking_store``) will add their schemes to it. Classes are imported lazily so an
unused backend's drivers are never loaded.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.store.tracking_store import AbstractTrackingStore

_SQL = "mlgrid_services.tracking.store.sql_store:SqlTrackingStore"

#: scheme → "module:Class" of the store serving it.
STORE_CLASSES: dict[str, str] = {
    "sqlite": _SQL,
    "postgresql": _SQL,
    "postgresql+psycopg": _SQL,
    "postgres": _SQL,
}


def store_scheme(uri: str) -> str:
    return urlsplit(uri).scheme.lower()


def store_class(uri: str) -> type[AbstractTrackingStore]:
    """The store class for ``uri``'s scheme; InvalidParameterValue naming the known ones."""
    scheme = store_scheme(uri)
    target = STORE_CLASSES.get(scheme)
    if target is None:
        known = ", ".join(sorted(STORE_CLASSES))
        raise InvalidParameterValue(
            f"Invalid tracking store URI {uri[:200]!r}: unknown scheme {scheme!r}; known schemes "
            f"are {known}"
        )
    module_name, _, class_name = target.partition(":")
    cls: type[AbstractTrackingStore] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open_store(uri: str, default_artifact_root: str) -> AbstractTrackingStore:
    """Opens (and migrates, for SQL) the tracking store at ``uri``."""
    cls = store_class(uri)
    return cls(uri, default_artifact_root)  # type: ignore[call-arg]
