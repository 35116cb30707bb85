"""Which registry store serves a call: the default one, or the one the client names.

Stores are found by URI scheme: the SQL store for ``sqlite`` and ``postgresql`` (any driver
spelling), and plugins registered under the entry-point group ``mlgrid.model_registry_store``
(which override built-ins of the same scheme). A call may name its store in the
``mlgrid-store-uri`` metadata; the service honours the default store under any spelling and
plugin stores, but will not open arbitrary *other* SQL databases on a client's say-so (that
would let a remote caller create or read database files on the server).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy.engine import make_url

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry
from mlgrid.registry.store import AbstractRegistryStore
from mlgrid.uris import uri_scheme
from mlgrid_services.common.sql import normalize_db_uri

_SQL_STORE = "mlgrid_services.registry.sqlstore.store:SqlRegistryStore"
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def registry_stores() -> SchemeRegistry[AbstractRegistryStore]:
    return SchemeRegistry(
        ENTRY_POINT_GROUPS["model_registry_store"],
        "model registry store",
        dict.fromkeys(SQL_SCHEMES, _SQL_STORE),
    )


def _same_database(a: str, b: str) -> bool:
    try:
        ua, ub = make_url(normalize_db_uri(a)), make_url(normalize_db_uri(b))
    except Exception:
        return a == b
    if ua.get_backend_name() == ub.get_backend_name() == "sqlite":
        if not ua.database or not ub.database:
            return ua.database == ub.database
        return Path(ua.database).expanduser().resolve() == Path(ub.database).expanduser().resolve()
    return ua.render_as_string(hide_password=False) == ub.render_as_string(hide_password=False)


class StoreSet:
    """The default store plus any plugin stores opened for calls that name them."""

    def __init__(self, default_uri: str) -> None:
        self.default_uri = default_uri
        self.registry = registry_stores()
        self.default = self._open(default_uri)
        self._others: dict[str, AbstractRegistryStore] = {}
        self._lock = threading.Lock()

    def _open(self, uri: str) -> AbstractRegistryStore:
        cls = self.registry.get(uri_scheme(uri))
        return cls(uri)  # type: ignore[call-arg]

    def schemes(self) -> list[str]:
        return self.registry.schemes()

    def for_uri(self, uri: str | None) -> AbstractRegistryStore:
        if not uri or uri == self.default_uri:
            return self.default
        scheme = uri_scheme(uri)
        if scheme in SQL_SCHEMES and scheme not in self.registry.plugin_schemes():
            if uri_scheme(self.default_uri) in SQL_SCHEMES and _same_database(
                uri, self.default_uri
            ):
                return self.default
            raise InvalidParameterValue(
                f"registry store {uri!r} is not served here: this registry serves its configured "
                "store only; point the registry URI at it or start a stack for that database"
            )
        with self._lock:
            store = self._others.get(uri)
            if store is None:
                store = self._others[uri] = self._open(uri)
            return store

    def close(self) -> None:
        with self._lock:
            stores = [self.default, *self._others.values()]
            self._others.clear()
        for store in stores:
            store.close()
