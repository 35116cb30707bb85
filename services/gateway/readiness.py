"""The gateway's gRPC health: SERVING means "can route", not just "is listening".

A gateway that answers SERVING before its backends have said what they serve would take traffic
(a Kubernetes readiness probe, compose's ``depends_on: service_healthy``) only to fail every call
with "no route". So the whole process ("") is SERVING once every backend it was told to discover
has answered, and each forwarded service's name is SERVING once the routing table has a route
for it. Each health check asks pending backends again (rate-limited by discovery), so a probe
alone brings a gateway started before its backends to SERVING.
"""

from __future__ import annotations

from collections.abc import Callable

from grpc_health.v1 import health, health_pb2

from .discovery import Discovery
from .routing import DEFAULT, RoutingTable

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RoutingHealth(health.HealthServicer):
    """grpc.health.v1 whose statuses follow what the gateway can route."""

    def __init__(self) -> None:
        super().__init__(experimental_non_blocking=True)
        self._refresh: Callable[[], None] | None = None

    def follow(self, table: RoutingTable, discovery: Discovery) -> None:
        """From now on, statuses come from ``table`` and ``discovery`` (set once started)."""

        def refresh() -> None:
            discovery.retry_pending()
            for service in table.services.values():
                routed = (
                    bool(table.schemes(service.key))
                    or table.lookup(service.key, DEFAULT) is not None
                )
                self.set(service.full_name, SERVING if routed else NOT_SERVING)
            self.set("", NOT_SERVING if discovery.pending else SERVING)

        self._refresh = refresh
        refresh()

    def Check(self, request, context):
        # After enter_graceful_shutdown the base class ignores set(): draining stays NOT_SERVING.
        if self._refresh is not None:
            self._refresh()
        return super().Check(request, context)
