"""Server bootstrap shared by every mlgrid process: the services, the gateway, plugin services.

One function builds a gRPC server with what every process offers (error mapping, gRPC health,
reflection, BackendInfoService announcing the schemes it serves, keepalive settings that do not
trip ``too_many_pings``); another runs it until SIGTERM/SIGINT and stops it gracefully.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import mlgrid
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.limits import MAX_CONCURRENT_CALLS, MAX_PIPELINES
from mlgrid.protocol import SERVER_OPTIONS

from .auth.policy import Rule
from .errors import ErrorMappingInterceptor
from .pipeline import PipelineServicer

if TYPE_CHECKING:
    from .auth.runtime import AuthRuntime

log = logging.getLogger(__name__)

#: Seconds a stopping server waits, after its grace, for gRPC to finish the calls it cancelled.
STOP_SETTLE_SECONDS = 5.0


@dataclass
class ServedService:
    """A gRPC service a process serves, and the routing keys it accepts."""

    #: Fully-qualified service name, e.g. "mlgrid.api.tracking.v1.TrackingService".
    name: str
    #: Adds the servicer to a server (the generated ``add_XServicer_to_server`` bound to it).
    register: Callable[[grpc.Server], None]
    #: URI schemes (or project backend names) this process handles for the service.
    schemes: list[str] = field(default_factory=list)
    #: gRPC server options the service needs beyond SERVER_OPTIONS (they override them).
    server_options: list[tuple[str, int]] = field(default_factory=list)
    #: "/pkg.Service/Method" -> what the call needs when auth is on (services/common/auth);
    #: a service with rules has every method without one refused.
    rules: dict[str, Rule] = field(default_factory=dict)


class _BackendInfoServicer(common_pb2_grpc.BackendInfoServiceServicer):
    def __init__(self, services: Sequence[ServedService]) -> None:
        self._answer = common_pb2.GetBackendInfoResponse(
            services=[
                common_pb2.ServedService(service=s.name, schemes=sorted(s.schemes))
                for s in services
            ],
            version=mlgrid.__version__,
            # New at each start: a client told to call this process directly can tell it from
            # whatever else may listen on that port (a restart binds the same port).
            instance=secrets.token_hex(16),
        )

    def GetBackendInfo(self, request, context):
        return self._answer


@dataclass
class RunningServer:
    """A started server and the port it bound (useful with port 0)."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    address: str
    #: The server's call pipelines (ended first when it stops); None on a server without.
    pipelines: PipelineServicer | None = None

    def stop(self, grace: float | None = 5.0) -> None:
        """Stops accepting calls, lets running ones finish within ``grace`` seconds (call
        pipelines end at once, after the call each may be running); returns at most
        ``STOP_SETTLE_SECONDS`` after that even if gRPC still counts a call as running."""
        self.health.enter_graceful_shutdown()
        if self.pipelines is not None:
            self.pipelines.close()
        # After the grace gRPC cancels every call and waits for each to finish. One it never
        # finishes would hold the stop for ever: grpcio (1.62-1.85) leaks a client-streaming
        # call whose message does not parse (it sends a second status that never completes);
        # the services parse their requests themselves (errors.py), but the bound stays for
        # what we have not seen.
        if not self.server.stop(grace).wait((grace or 0) + STOP_SETTLE_SECONDS):
            log.warning(
                "the server on %s stopped with calls gRPC never finished (%g s after its "
                "grace); stopping anyway",
                self.address,
                STOP_SETTLE_SECONDS,
            )


def _merged_options(services: Sequence[ServedService]) -> list[tuple[str, int]]:
    merged = dict(SERVER_OPTIONS)
    for service in services:
        merged.update(service.server_options)
    return list(merged.items())


def call_interceptors(
    services: Sequence[ServedService], auth: AuthRuntime | None = None
) -> list[grpc.ServerInterceptor]:
    """What every call to ``services`` passes through, outermost first: error mapping (with the
    call's scope), then the auth checks when auth is on. Servers and the in-process channel of
    embedded mode (services/common/inprocess.py) both use exactly these."""
    checks: list[grpc.ServerInterceptor] = [ErrorMappingInterceptor()]
    if auth is not None:
        from .auth.interceptor import AuthInterceptor

        rules = {method: rule for s in services for method, rule in s.rules.items()}
        checks.append(AuthInterceptor(auth, rules, {s.name for s in services if s.rules}))
    return checks


def start_server(
    services: Sequence[ServedService],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_workers: int = 32,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    generic_handlers: Sequence[grpc.GenericRpcHandler] = (),
    address: str | None = None,
    auth: AuthRuntime | None = None,
) -> RunningServer:
    """Builds and starts a server for ``services`` on ``host:port`` (or a ``unix:`` address).

    ``generic_handlers`` take every method the registered services do not (the gateway uses
    this to forward calls it does not serve itself). ``auth`` (the process's auth runtime, when
    auth is on) installs the auth interceptor with the services' rules.
    """
    # Every call passes these; pipelined calls too (pipeline.py).
    chain = [*call_interceptors(services, auth), *interceptors]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=chain,
        options=_merged_options(services),
        maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
    )
    for service in services:
        service.register(server)
    common_pb2_grpc.add_BackendInfoServiceServicer_to_server(_BackendInfoServicer(services), server)
    pipelines = None
    if services:  # a service's small idempotent calls over one stream (pipeline.py)
        pipelines = PipelineServicer(
            services, chain, max_pipelines=min(MAX_PIPELINES, max_workers // 2 or 1)
        )
        common_pb2_grpc.add_CallPipelineServiceServicer_to_server(pipelines, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.name for s in services]
    reflection.enable_server_reflection(
        [
            *names,
            common_pb2.DESCRIPTOR.services_by_name["BackendInfoService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if generic_handlers:
        server.add_generic_rpc_handlers(tuple(generic_handlers))
    bind = address or f"{host}:{port}"
    bound = server.add_insecure_port(bind)
    if bound == 0 and not bind.startswith("unix:"):
        raise OSError(f"could not bind gRPC server to {bind}")
    server.start()
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    shown = bind if bind.startswith("unix:") else f"{host}:{bound}"
    log.info("serving %s on %s", ", ".join(names) or "gateway", shown)
    return RunningServer(
        server=server, port=bound, health=health_servicer, address=shown, pipelines=pipelines
    )


def serve_until_signalled(
    running: RunningServer,
    *,
    grace: float = 5.0,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Blocks until SIGTERM or SIGINT, then stops gracefully and runs ``on_stop``."""
    stop = threading.Event()
    received: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        received.append(signum)
        # Set from another thread: the handler runs on the main thread, which may be holding
        # the Event's internal (non-reentrant) lock at that instant; Event.set here could hang.
        threading.Thread(target=stop.set, name="stop-request", daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # Wake up regularly: a signal that the kernel delivers to one of gRPC's threads runs its
    # Python handler only when the main thread next runs bytecode, so an unbounded wait could
    # sleep through SIGTERM.
    while not stop.wait(0.25):
        pass
    log.info("received %s, stopping", signal.Signals(received[0]).name)
    running.stop(grace)
    if on_stop is not None:
        on_stop()
