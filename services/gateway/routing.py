"""The gateway's routing table: ``(service, scheme) -> backend address``.

Routes come from two places. The config file names them explicitly (``backends`` and
``defaults``), and each built-in backend announces the services and schemes it serves through
``BackendInfoService.GetBackendInfo`` (see :mod:`.discovery`). Explicit routes win over announced
ones, so a plugin service configured for ``file`` overrides the built-in artifacts service's
``file``. The table is replaced as a whole on every change, so the per-call lookup is a plain
dict read without a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.uris import GATEWAY_SCHEMES, uri_scheme

from .methods import ForwardedService, RouteBy

#: Routing key of calls that name no backend: the service's default backend.
DEFAULT = ""


@dataclass(frozen=True)
class Route:
    """Where calls of one service with one routing key go, and why."""

    service: str
    #: URI scheme or project backend name; "" for the default backend.
    scheme: str
    address: str
    #: "config" or "announced by <address>": shown when the route misbehaves.
    origin: str

    def describe(self) -> str:
        what = (
            f"{self.service} backend for scheme {self.scheme!r}"
            if self.scheme
            else f"default {self.service} backend"
        )
        return f"{what} at {self.address} ({self.origin})"


class RoutingTable:
    """Routes by (service, scheme), with explicit routes taking precedence over announced ones."""

    def __init__(self, services: Iterable[ForwardedService]) -> None:
        self._services = {s.key: s for s in services}
        self._lock = threading.Lock()
        self._configured: dict[tuple[str, str], Route] = {}
        self._announced: dict[tuple[str, str], Route] = {}
        #: Which group of replicas announced each key (None: a lone backend).
        self._announced_by: dict[tuple[str, str], Hashable | None] = {}
        self._table: dict[tuple[str, str], Route] = {}

    @property
    def services(self) -> dict[str, ForwardedService]:
        return self._services

    def _check_service(self, service: str) -> None:
        if service not in self._services:
            raise InvalidParameterValue(
                f"unknown service {service!r} in a route; known: {', '.join(sorted(self._services))}"
            )

    def add_route(self, service: str, scheme: str, address: str, origin: str = "config") -> None:
        """An explicit route; ``scheme`` "" makes ``address`` the service's default backend."""
        self._check_service(service)
        if not address:
            raise InvalidParameterValue(f"route for {service}/{scheme!r} has an empty address")
        with self._lock:
            self._configured[(service, scheme.lower())] = Route(
                service, scheme.lower(), address, origin
            )
            self._rebuild()

    def announce(
        self,
        service: str,
        schemes: Iterable[str],
        address: str,
        replicas_of: Hashable | None = None,
    ) -> None:
        """Records what a backend announced; it also becomes the default if there is none.

        The first backend to announce a key keeps it, except that a later announcement from
        the same group of replicas (``replicas_of``, see Discovery) replaces it: ``address``
        then lists every replica known so far.
        """
        self._check_service(service)
        origin = f"announced by {address}"
        with self._lock:
            for scheme in [*(s.lower() for s in schemes), DEFAULT]:
                key = (service, scheme)
                ours = replicas_of is not None and self._announced_by.get(key) == replicas_of
                if key not in self._announced or ours:
                    self._announced[key] = Route(service, scheme, address, origin)
                    self._announced_by[key] = replicas_of
            self._rebuild()

    def _rebuild(self) -> None:
        self._table = {**self._announced, **self._configured}

    def routes(self) -> list[Route]:
        """Every route, sorted (for logs and errors)."""
        return sorted(self._table.values(), key=lambda r: (r.service, r.scheme))

    def schemes(self, service: str) -> list[str]:
        """The routing keys known for ``service`` (without the default)."""
        return sorted(s for (svc, s) in self._table if svc == service and s != DEFAULT)

    def lookup(self, service: str, scheme: str) -> Route | None:
        """The route for a routing key (from :meth:`routing_key`, so a URI's scheme is already
        :func:`mlgrid.uris.uri_scheme`'s), or None: the caller may retry discovery."""
        return self._table.get((service, scheme))

    def routing_key(
        self, forwarded: ForwardedService, field_value: str | None, store_uri: str | None
    ) -> str:
        """The routing key of one call: a scheme, a backend name, or DEFAULT."""
        if forwarded.route_by is RouteBy.DEFAULT_ONLY:
            return DEFAULT
        if forwarded.route_by is RouteBy.STORE_METADATA:
            if not store_uri:
                return DEFAULT
            scheme = uri_scheme(store_uri)
            return DEFAULT if scheme in GATEWAY_SCHEMES else scheme
        if not field_value:
            return forwarded.empty_key
        if forwarded.route_by is RouteBy.URI_FIELD:
            return uri_scheme(field_value)
        return field_value.lower()

    def no_route_error(
        self, forwarded: ForwardedService, key: str, shown_value: str
    ) -> InvalidParameterValue:
        """The error for a call whose routing key has no backend."""
        known = self.schemes(forwarded.key)
        known_text = ", ".join(repr(k) for k in known) if known else "none"
        if key == DEFAULT:
            return InvalidParameterValue(
                f"no default {forwarded.key} backend is configured and the call names none "
                f"(set {forwarded.key_field}); known schemes: {known_text}"
            )
        what = "backend" if forwarded.route_by is RouteBy.NAME_FIELD else "scheme"
        return InvalidParameterValue(
            f"no {forwarded.key} backend serves {what} {key!r} (from {forwarded.key_field} = "
            f"{shown_value!r}); known {what}s: {known_text}"
        )
