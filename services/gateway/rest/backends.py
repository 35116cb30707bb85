"""The backends behind the REST edge, reached the way the gateway routes gRPC calls.

Tracking and registry calls go to the service's default store, artifact calls by the scheme of
the artifact URI, both looked up in the gateway's own routing table and sent over its channel
pool with the generated stubs. So REST calls land on exactly the backends (and plugin
backends) that gRPC calls do, with one hop instead of two. Each call carries the REST caller's
credentials (``caller``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc
from mlgrid.api.registry.v1 import registry_service_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc
from mlgrid.uris import uri_scheme

from ..channels import ChannelPool
from ..routing import DEFAULT, RoutingTable
from .caller import caller_credentials
from .errors import RestError

_STUBS: dict[str, Callable[[Any], Any]] = {
    "tracking": tracking_service_pb2_grpc.TrackingServiceStub,
    "registry": registry_service_pb2_grpc.RegistryServiceStub,
    "artifacts": artifacts_service_pb2_grpc.ArtifactsServiceStub,
}


class Backends:
    """Stubs for the routed backend of each call, cached per backend address."""

    def __init__(
        self, table: RoutingTable, pool: ChannelPool, retry_discovery: Callable[[], bool]
    ) -> None:
        self._table = table
        self._pool = pool
        self._retry_discovery = retry_discovery
        self._lock = threading.Lock()
        self._stubs: dict[tuple[str, str], Any] = {}

    def tracking(self) -> tracking_service_pb2_grpc.TrackingServiceStub:
        return self._stub("tracking", DEFAULT)  # type: ignore[no-any-return]

    def registry(self) -> registry_service_pb2_grpc.RegistryServiceStub:
        return self._stub("registry", DEFAULT)  # type: ignore[no-any-return]

    def artifacts(self, artifact_uri: str) -> artifacts_service_pb2_grpc.ArtifactsServiceStub:
        return self._stub("artifacts", uri_scheme(artifact_uri))  # type: ignore[no-any-return]

    def _stub(self, service: str, key: str) -> Any:
        route = self._table.lookup(service, key)
        if route is None and self._retry_discovery():
            route = self._table.lookup(service, key)
        if route is None:
            what = f"for scheme {key!r}" if key else "(default store)"
            raise RestError(
                "TEMPORARILY_UNAVAILABLE", f"no {service} backend {what} is reachable yet"
            )
        cache_key = (service, route.address)
        stub = self._stubs.get(cache_key)
        if stub is None:
            with self._lock:
                stub = self._stubs.get(cache_key)
                if stub is None:
                    channel = grpc.intercept_channel(
                        self._pool.channel(route.address), caller_credentials()
                    )
                    stub = _STUBS[service](channel)
                    self._stubs[cache_key] = stub
        return stub
