"""The gateway: one public port in front of every mlgrid backend.

:func:`start_gateway` builds it in-process (tests, fixtures); :func:`serve` is the process main
behind ``mlgrid server gateway``. The gateway itself serves gRPC health, reflection (listing the
forwarded services too) and BackendInfoService; every other call of the four mlgrid services is
forwarded by :class:`.forwarder.Forwarder`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import mlgrid
from mlgrid import environment as env
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.protocol import SERVER_OPTIONS
from mlgrid_services.common.server import RunningServer

from .channels import ChannelPool
from .config import GatewayConfig
from .direct_routes import direct_routes as list_direct_routes
from .discovery import Discovery
from .edge_auth import EdgeAuth
from .forwarder import Forwarder
from .methods import ForwardedService, builtin_services
from .readiness import RoutingHealth
from .replicas import service_config
from .rest import RestServer, start_rest_server
from .routing import DEFAULT, Route, RoutingTable
from .tls import TlsSettings
from .tunnel import TunnelListener

if TYPE_CHECKING:
    from mlgrid_services.common.auth.runtime import AuthRuntime

log = logging.getLogger(__name__)

#: Threads forwarding calls. A streaming call (logs followed, a large download) holds one for
#: its whole length, so this bounds concurrent streams, not just load; threads start on demand.
DEFAULT_WORKERS = 256


@dataclass
class Gateway:
    """A running gateway and its routing table."""

    running: RunningServer
    table: RoutingTable
    discovery: Discovery
    pool: ChannelPool
    #: The tunnel listener (see .tunnel), None when tunnels are off.
    tunnel: TunnelListener | None = None
    #: MLflow's REST API (see .rest), None when it is off.
    rest: RestServer | None = None
    #: The plaintext loopback port of a TLS gateway for its own stack's services (mlgrid up).
    internal_port: int | None = None

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
        if self.rest is not None:
            self.rest.stop()
        if self.tunnel is not None:
            self.tunnel.stop()
        self.running.stop(grace)
        self.pool.close()


class _BackendInfo(common_pb2_grpc.BackendInfoServiceServicer):
    """The gateway serves every forwarded contract (so one gateway can sit behind another)."""

    def __init__(
        self,
        forwarded: Sequence[ForwardedService],
        tunnel_port: int,
        tls: bool = False,
        direct: Callable[[], list[common_pb2.DirectRoute]] | None = None,
    ) -> None:
        self._answer = common_pb2.GetBackendInfoResponse(
            services=[common_pb2.ServedService(service=s.full_name) for s in forwarded],
            version=mlgrid.__version__,
            tunnel_port=tunnel_port,
        )
        #: The same without tunnels: what a TLS gateway tells a caller on its plaintext internal
        #: port, whose plaintext tunnels its TLS tunnel port would refuse.
        self._plain_answer = common_pb2.GetBackendInfoResponse(
            services=self._answer.services, version=self._answer.version
        )
        self._tls = tls
        #: The direct routes as the routing table has them at each ask (.direct_routes); None:
        #: not offered. Never with TLS (start_gateway).
        self._direct = direct

    def GetBackendInfo(self, request, context):
        if self._tls and context.auth_context().get("transport_security_type") != [b"ssl"]:
            return self._plain_answer
        if self._direct is None:
            return self._answer
        answer = common_pb2.GetBackendInfoResponse()
        answer.CopyFrom(self._answer)
        answer.direct_routes.extend(self._direct())
        return answer


def _serve(
    forwarded: Sequence[ForwardedService],
    forwarder: Forwarder,
    bind: str,
    shown_host: str | None,
    max_workers: int,
    health_servicer: RoutingHealth,
    tunnel_port: int = 0,
    tls: TlsSettings | None = None,
    internal_port: int | None = None,
    direct: Callable[[], list[common_pb2.DirectRoute]] | None = None,
) -> tuple[RunningServer, int | None]:
    """The gateway's server: like common.server.start_server, minus its error-mapping
    interceptor. Every forwarded call would pay for that wrapper (about an eighth of the
    gateway's CPU per call), and the forwarder maps its own few errors itself."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gateway"),
        # No SO_REUSEPORT: a second stack on a busy public port must fail, not share it.
        options=[*SERVER_OPTIONS, ("grpc.so_reuseport", 0)],
    )
    common_pb2_grpc.add_BackendInfoServiceServicer_to_server(
        _BackendInfo(forwarded, tunnel_port, tls=tls is not None, direct=direct), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.full_name for s in forwarded]
    described = [n for n in names if _in_default_pool(n)]
    reflection.enable_server_reflection(
        [
            *described,
            common_pb2.DESCRIPTOR.services_by_name["BackendInfoService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    server.add_generic_rpc_handlers((forwarder,))
    try:
        if tls is not None:
            bound = server.add_secure_port(bind, tls.grpc_credentials())
        else:
            bound = server.add_insecure_port(bind)
    except RuntimeError:  # grpc's way of saying the address is taken or invalid
        bound = 0
    if bound == 0 and not bind.startswith("unix:"):
        raise OSError(f"could not bind the gateway to {bind}: address in use or not available")
    internal = None
    if internal_port is not None:
        internal_bind = f"127.0.0.1:{internal_port}"
        try:
            internal = server.add_insecure_port(internal_bind)
        except RuntimeError:
            internal = 0
        if not internal:
            raise OSError(f"could not bind the gateway's internal port {internal_bind}")
    server.start()
    for name in ["", *names]:  # until start_gateway has asked the backends (see .readiness)
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    shown = bind if shown_host is None else f"{shown_host}:{bound}"
    if tls is None:
        log.info("gateway serving on %s", shown)
    else:
        log.info(
            "gateway serving on %s with TLS (%s)",
            shown,
            "client certificates required" if tls.mutual else "server certificate",
        )
    if internal is not None:
        log.info("gateway: plaintext port for this host's own services on 127.0.0.1:%d", internal)
    running = RunningServer(server=server, port=bound, health=health_servicer, address=shown)
    return running, internal


def _in_default_pool(full_name: str) -> bool:
    """Reflection can only describe contracts of the default descriptor pool."""
    try:
        descriptor_pool.Default().FindServiceByName(full_name)
    except KeyError:
        return False
    return True


def start_gateway(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    address: str | None = None,
    config: GatewayConfig | None = None,
    backends: Sequence[str] = (),
    discover_timeout: float = 5.0,
    extra_services: Sequence[ForwardedService] = (),
    max_workers: int | None = None,
    tunnel_port: int | None = None,
    rest_port: int | None = None,
    rest_artifacts_root: str | None = None,
    tls: TlsSettings | None = None,
    internal_port: int | None = None,
    auth: AuthRuntime | None = None,
    direct_routes: bool = False,
) -> Gateway:
    """Starts a gateway on ``host:port`` (or ``address``, e.g. ``unix:/path``).

    ``backends`` and ``config.discover`` are asked what they serve; ``config.backends`` and
    ``config.defaults`` are explicit routes. ``extra_services`` forwards more contracts (tests).
    ``tunnel_port`` (0: any free port) opens the tunnel listener on ``host``; None: no tunnels.
    ``rest_port`` (0: any free port) serves MLflow's REST API on ``host``, with the proxied
    ``mlflow-artifacts:/`` root ``rest_artifacts_root``; None: no REST port.
    ``auth`` (the process's auth runtime, auth on) authenticates every call and tunnel.
    ``direct_routes`` tells local callers where the backends of the tunnel routes are
    (.direct_routes); a TLS gateway never does.
    """
    config = config or GatewayConfig()
    forwarded = [*builtin_services(), *extra_services]
    table = RoutingTable(forwarded)
    for spec in config.backends:
        table.add_route(spec.service, spec.scheme, spec.address)
    for service, default_address in config.defaults.items():
        table.add_route(service, DEFAULT, default_address)
    pool = ChannelPool(
        service_config=service_config(kind for s in forwarded for kind in s.methods.values())
    )
    discovery = Discovery(table, pool)
    edge = EdgeAuth(auth) if auth is not None else None
    forwarder = Forwarder(table, pool, discovery, auth=edge)
    health_servicer = RoutingHealth()
    tunnel = None
    if tunnel_port is not None and address is None:
        tunnel = TunnelListener(
            table,
            table.services,
            discovery.retry_pending,
            tls=tls.server_context(["h2"]) if tls is not None else None,
            # Plaintext tunnels carry the credentials on CONNECT; TLS tunnels do not
            # (the CONNECT is in clear): there each call's credentials are checked by the service.
            check_caller=edge.check_connect if edge is not None and tls is None else None,
        )
        tunnel.start(host, tunnel_port)
    try:
        running, bound_internal = _serve(
            forwarded,
            forwarder,
            bind=address or f"{host}:{port}",
            shown_host=None if address else host,
            max_workers=max_workers or env.MLGRID_GATEWAY_WORKERS.get(),
            health_servicer=health_servicer,
            tunnel_port=tunnel.port if tunnel is not None else 0,
            tls=tls,
            internal_port=internal_port,
            direct=(
                functools.partial(list_direct_routes, table, discovery)
                if direct_routes and tls is None
                else None
            ),
        )
    except BaseException:
        if tunnel is not None:
            tunnel.stop()
        raise
    rest = None
    if rest_port is not None:
        try:
            rest = start_rest_server(
                table,
                pool,
                discovery.retry_pending,
                host=host,
                port=rest_port,
                artifacts_root=rest_artifacts_root,
                tls=tls.server_context(["http/1.1"]) if tls is not None else None,
            )
        except BaseException:
            running.stop(0)
            if tunnel is not None:
                tunnel.stop()
            raise
    gateway = Gateway(
        running=running,
        table=table,
        discovery=discovery,
        pool=pool,
        tunnel=tunnel,
        rest=rest,
        internal_port=bound_internal,
    )
    for backend in [*config.discover, *backends]:
        gateway.add_backend(backend, discover_timeout)
    health_servicer.follow(table, discovery)
    return gateway
