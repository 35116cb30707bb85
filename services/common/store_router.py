"""The one store router of the tracking and registry services: a call's store URI → its store.

Tracking and registry calls may name their store in the ``mlgrid-store-uri`` metadata (the SDK
sets it from the tracking/registry URI; the gateway routes on its scheme). Every service that
serves stores (the tracking and registry services, and a plugin served by ``mlgrid plugin
serve``) picks the store of each call here, with one policy:

1. A call that names no store, or names a gateway (``grpc://``, ``grpcs://``), uses the
   service's configured store; with none configured it is refused, saying what to set.
2. A URI naming the configured store (any spelling of the same database) uses it.
3. A URI of a scheme the service opens on request (an installed plugin's) opens that store,
   once, and keeps it (at most MAX_STORES).
4. Any other URI is refused, naming what is served: a client never makes the service open a
   database or file of its choosing.

What a router hands out is whatever its ``open_store`` builds for a URI (a domain object over
the store); the router only caches and closes them. This module imports no service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Generic, TypeVar

import grpc
from sqlalchemy.engine import make_url

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.protocol import STORE_URI_METADATA
from mlgrid.uris import is_gateway_uri, uri_scheme

from .sql import normalize_db_uri

T = TypeVar("T")

#: Distinct stores one process keeps open; more is refused rather than opening files without end.
MAX_STORES = 64

#: What ``open_store`` returns: the object calls use, and the function releasing its store.
Opened = tuple[T, Callable[[], None]]


def store_uri_of(context: grpc.ServicerContext) -> str | None:
    """The ``mlgrid-store-uri`` the call names, or None."""
    for key, value in context.invocation_metadata() or ():
        if key == STORE_URI_METADATA:
            return value if isinstance(value, str) else value.decode()
    return None


def same_store(a: str, b: str) -> bool:
    """Whether two store URIs name the same store: the same database under any spelling
    (driver, ``postgres://``, a relative SQLite path), else the same text."""
    if a == b:
        return True
    try:
        ua, ub = make_url(normalize_db_uri(a)), make_url(normalize_db_uri(b))
    except Exception:
        return False
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        if not ua.database or not ub.database:
            return ua.database == ub.database
        return Path(ua.database).expanduser().resolve() == Path(ub.database).expanduser().resolve()
    return ua.set(drivername=ua.get_backend_name()).render_as_string(hide_password=False) == ub.set(
        drivername=ub.get_backend_name()
    ).render_as_string(hide_password=False)


class StoreRouter(Generic[T]):
    """Stores by URI, with the policy of the module docstring."""

    def __init__(
        self,
        open_store: Callable[[str], Opened[T]],
        *,
        default_uri: str | None,
        opened_on_request: Collection[str] = (),
        what: str,
    ) -> None:
        """``open_store(uri)`` builds what calls use; ``default_uri`` is the configured store
        (opened now, so a bad one fails at start); ``opened_on_request`` the schemes whose
        stores a call may open by naming them; ``what`` names the service in errors."""
        self._open = open_store
        self.default_uri = default_uri
        self.opened_on_request = sorted({s.lower() for s in opened_on_request})
        self._what = what
        self._lock = threading.Lock()
        self._opened: dict[str, T] = {}
        self._closers: list[Callable[[], None]] = []
        #: URIs already resolved (spelling → what serves it): a call pays one dict lookup.
        self._routes: dict[str, T] = {}
        self.default: T | None = None
        if default_uri is not None:
            self.default = self._open_once(default_uri)

    def for_call(self, context: grpc.ServicerContext) -> T:
        """What serves the store the call names (or the configured store)."""
        return self.for_uri(store_uri_of(context))

    def for_uri(self, uri: str | None) -> T:
        if uri:
            routed = self._routes.get(uri)
            if routed is not None:
                return routed
        served = self._resolve(uri)
        if uri:
            if len(self._routes) >= 4 * MAX_STORES:
                self._routes.clear()
            self._routes[uri] = served
        return served

    def _resolve(self, uri: str | None) -> T:
        if not uri or is_gateway_uri(uri):
            if self.default is None:
                raise InvalidParameterValue(
                    f"the call names no store and this {self._what} has no default one: set the "
                    f"{STORE_URI_METADATA} metadata (MLGRID_STORE_URI in the SDK) to a store it "
                    f"serves ({self._served()})"
                )
            return self.default
        if self.default is not None and same_store(uri, self.default_uri or ""):
            return self.default
        if uri_scheme(uri) in self.opened_on_request:
            return self._open_once(uri)
        raise InvalidParameterValue(
            f"{STORE_URI_METADATA} {uri[:200]!r} is not served here: this {self._what} serves "
            f"{self._served()}; point the URI at one of those, or at a stack serving that store"
        )

    def _served(self) -> str:
        served = []
        if self.default_uri is not None:
            served.append(f"its configured {uri_scheme(self.default_uri)!r} store")
        if self.opened_on_request:
            schemes = ", ".join(repr(s) for s in self.opened_on_request)
            served.append(f"stores with scheme {schemes}")
        return " and ".join(served) or "no store"

    def _open_once(self, uri: str) -> T:
        with self._lock:
            opened = self._opened.get(uri)
            if opened is not None:
                return opened
            if len(self._opened) >= MAX_STORES:
                raise InvalidParameterValue(
                    f"{STORE_URI_METADATA} {uri[:200]!r} is not served: this {self._what} "
                    f"already has {MAX_STORES} stores open, the most it keeps"
                )
            # Opened under the lock: two first calls for one store must not open it twice.
            opened, close = self._open(uri)
            self._opened[uri] = opened
            self._closers.append(close)
            return opened

    def close(self) -> None:
        with self._lock:
            closers = list(self._closers)
            self._closers.clear()
            self._opened.clear()
            self._routes.clear()
        for close in reversed(closers):
            close()
