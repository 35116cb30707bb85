"""The gateway: one public port in front of every mlgrid backend.

:func:`start_gateway` builds it in-process (tests, fixtures); :func:`serve` is the process main
behind ``mlgrid server gateway``. The gateway itself serves gRPC health, reflection (listing the
forwarded services too) and BackendInfoService; every other call of the four mlgrid services is
forwarded by :class:`.forwarder.Forwarder`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mlgrid_services.common.server import RunningServer, ServedService, start_server

from .channels import ChannelPool
from .config import GatewayConfig
from .discovery import Discovery
from .forwarder import Forwarder
from .methods import ForwardedService, builtin_services
from .routing import DEFAULT, Route, RoutingTable

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """A running gateway and its routing table."""

    running: RunningServer
    table: RoutingTable
    discovery: Discovery
    pool: ChannelPool

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def address(self) -> str:
        """The gRPC target clients connect to (``host:port`` or ``unix:/path``)."""
        return self.running.address

    def add_backend(self, address: str, timeout: float = 5.0) -> bool:
        """Asks the backend at ``address`` what it serves and routes to it; False if it is silent."""
        return self.discovery.add(address, timeout)

    def add_route(self, service: str, scheme: str, address: str) -> None:
        """Routes ``service`` calls for ``scheme`` ("" = default backend) to ``address``."""
        self.table.add_route(service, scheme, address)

    def routes(self) -> list[Route]:
        return self.table.routes()

    def stop(self, grace: float | None = 5.0) -> None:
        """Stops taking calls; calls in flight finish within ``grace`` seconds."""
        self.running.stop(grace)
        self.pool.close()


def start_gateway(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    address: str | None = None,
    config: GatewayConfig | None = None,
    backends: Sequence[str] = (),
    discover_timeout: float = 5.0,
    extra_services: Sequence[ForwardedService] = (),
    max_workers: int = 64,
) -> Gateway:
    """Starts a gateway on ``host:port`` (or ``address``, e.g. ``unix:/path``).

    ``backends`` and ``config.discover`` are asked what they serve; ``config.backends`` and
    ``config.defaults`` are explicit routes. ``extra_services`` forwards more contracts (tests).
    """
    config = config or GatewayConfig()
    forwarded = [*builtin_services(), *extra_services]
    table = RoutingTable(forwarded)
    for spec in config.backends:
        table.add_route(spec.service, spec.scheme, spec.address)
    for service, default_address in config.defaults.items():
        table.add_route(service, DEFAULT, default_address)
    pool = ChannelPool()
    discovery = Discovery(table, pool)
    forwarder = Forwarder(table, pool, discovery)
    # Listed so that health and reflection cover them; their calls reach the forwarder because
    # nothing registers a servicer for them here.
    listed = [ServedService(s.full_name, register=lambda server: None) for s in forwarded]
    running = start_server(
        listed,
        host=host,
        port=port,
        address=address,
        generic_handlers=[forwarder],
        max_workers=max_workers,
    )
    gateway = Gateway(running=running, table=table, discovery=discovery, pool=pool)
    for backend in [*config.discover, *backends]:
        gateway.add_backend(backend, discover_timeout)
    return gateway
