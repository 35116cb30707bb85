"""The registry's store classes by URI scheme: the SQL store for ``sqlite``, ``postgresql`` and
``mysql`` (any driver spelling), and plugins registered under the entry-point group
``mlgrid.model_registry_store`` (which override built-ins of the same scheme). Which store serves
a call is decided by services/common/store_router.py.
"""

from __future__ import annotations

from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry
from mlgrid.registry.store import AbstractRegistryStore
from mlgrid.uris import uri_scheme

_SQL_STORE = "mlgrid_services.registry.sqlstore.store:SqlRegistryStore"
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def registry_stores() -> SchemeRegistry[AbstractRegistryStore]:
    return SchemeRegistry(
        ENTRY_POINT_GROUPS["model_registry_store"],
        "model registry store",
        dict.fromkeys(SQL_SCHEMES, _SQL_STORE),
    )


def open_registry_store(uri: str) -> AbstractRegistryStore:
    """The registry store at ``uri`` (migrated to head, for SQL)."""
    cls = registry_stores().get(uri_scheme(uri))
    return cls(uri)  # type: ignore[call-arg]
