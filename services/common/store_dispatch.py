"""Per-store dispatch: one servicer per store URI, chosen by each call's ``mlgrid-store-uri``.

Tracking and registry calls name their store in the ``mlgrid-store-uri`` metadata (the SDK sets
it from the tracking/registry URI; the gateway routes on its scheme). A service built around a
single store (the tracking servicer is) serves many stores of one scheme by keeping one servicer
per URI; :func:`dispatching_servicer` makes a servicer of the service's generated base class
whose every method hands the call to the servicer of the call's store.

This module imports no service, so any service may use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.protocol import STORE_URI_METADATA
from mlgrid.uris import is_gateway_uri, uri_scheme

#: Distinct stores one process keeps open; more is refused rather than opening files without end.
MAX_STORES = 64


def store_uri_of(context: grpc.ServicerContext) -> str | None:
    """The ``mlgrid-store-uri`` the call names, or None."""
    for key, value in context.invocation_metadata() or ():
        if key == STORE_URI_METADATA:
            return value if isinstance(value, str) else value.decode()
    return None


class StoreServicers:
    """Servicers by store URI for the stores of ``schemes``, opened on first use and cached.

    ``open(uri)`` returns the servicer of that store and a function releasing the store.
    ``default_uri`` serves calls that name no store (None: such calls are refused).
    """

    def __init__(
        self,
        schemes: list[str],
        open_store: Callable[[str], tuple[Any, Callable[[], None]]],
        default_uri: str | None = None,
        what: str = "store",
    ) -> None:
        self.schemes = sorted({s.lower() for s in schemes})
        self._open = open_store
        self._what = what
        self._lock = threading.Lock()
        self._servicers: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self.default_uri = default_uri
        if default_uri is not None:
            self.for_uri(default_uri)  # fail at start, not at the first call

    def _check(self, uri: str) -> None:
        scheme = uri_scheme(uri)
        if scheme not in self.schemes:
            raise InvalidParameterValue(
                f"{STORE_URI_METADATA} {uri[:200]!r} is not served here: this {self._what} "
                f"serves store URIs with scheme {', '.join(repr(s) for s in self.schemes)}"
            )

    def for_uri(self, uri: str) -> Any:
        """The servicer of the store at ``uri`` (opened now if needed)."""
        self._check(uri)
        with self._lock:
            servicer = self._servicers.get(uri)
            if servicer is not None:
                return servicer
            if len(self._servicers) >= MAX_STORES:
                raise InvalidParameterValue(
                    f"{STORE_URI_METADATA} {uri[:200]!r} is not served: this {self._what} "
                    f"already has {MAX_STORES} stores open, the most it keeps"
                )
            # Opened under the lock: two first calls for one store must not open it twice.
            servicer, close = self._open(uri)
            self._servicers[uri] = servicer
            self._closers.append(close)
            return servicer

    def for_call(self, context: grpc.ServicerContext) -> Any:
        """The servicer of the store the call names (or of the default store)."""
        uri = store_uri_of(context)
        if uri and not is_gateway_uri(uri):
            return self.for_uri(uri)
        if self.default_uri is None:
            raise InvalidParameterValue(
                f"the call names no store and this {self._what} has no default one: set the "
                f"{STORE_URI_METADATA} metadata (MLGRID_STORE_URI in the SDK) to a URI with "
                f"scheme {', '.join(repr(s) for s in self.schemes)}"
            )
        return self.for_uri(self.default_uri)

    def close(self) -> None:
        with self._lock:
            closers = list(self._closers)
            self._closers.clear()
            self._servicers.clear()
        for close in reversed(closers):
            close()


def dispatching_servicer(
    base: type, descriptor: ServiceDescriptor, pick: Callable[[grpc.ServicerContext], Any]
) -> Any:
    """An instance of the generated servicer ``base`` whose methods delegate to ``pick(context)``.

    Works for every call shape: a servicer method takes ``(request or request iterator,
    context)`` and returns a response or a response iterator, which is passed on as is.
    """

    def delegate(name: str) -> Callable[[Any, Any, grpc.ServicerContext], Any]:
        def method(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            return getattr(pick(context), name)(request, context)

        method.__name__ = name
        return method

    namespace = {m.name: delegate(m.name) for m in descriptor.methods}
    cls = type(f"Dispatching{base.__name__}", (base,), namespace)
    return cls()


def with_plugin_stores(
    default_servicer: Any,
    plugin_schemes: list[str],
    open_store: Callable[[str], tuple[Any, Callable[[], None]]],
    *,
    default_uri: str,
    base: type,
    descriptor: ServiceDescriptor,
    what: str,
) -> tuple[Any, Callable[[], None]]:
    """A built-in service's servicer that also serves the stores of installed plugins.

    Calls whose ``mlgrid-store-uri`` has a plugin scheme (other than the default store itself)
    go to that store's own servicer (``open_store(uri)``, cached per URI); every other call goes
    to ``default_servicer`` as before. Without plugins ``default_servicer`` is returned as is,
    so the built-in service pays nothing per call. Returns the servicer and a close function.
    """
    if not plugin_schemes:
        return default_servicer, lambda: None
    plugins = StoreServicers(plugin_schemes, open_store, None, what=what)

    def pick(context: grpc.ServicerContext) -> Any:
        uri = store_uri_of(context)
        if uri and uri != default_uri and uri_scheme(uri) in plugins.schemes:
            return plugins.for_uri(uri)
        return default_servicer

    return dispatching_servicer(base, descriptor, pick), plugins.close
