"""Client side of the gateway's tunnels (services/gateway/tunnel.py).

A gateway may announce a tunnel port (``GetBackendInfoResponse.tunnel_port``). Calls of the
tracking, registry and artifacts services can then go over a channel that gRPC itself opens
through the gateway with HTTP ``CONNECT`` (the ``grpc.http_proxy`` channel argument), pinned to
the backend of one route: one gRPC hop instead of two, which is most of a small call's cost, and
bulk bytes relayed rather than re-sent message by message. Tracking and registry tunnels go to
the default store's backend; artifact tunnels to the backend of one URI scheme. Calls that name a
store (``MLGRID_STORE_URI``) and projects calls use the gateway port, which routes each call by
its content (see ``Transport.tracking``).

Which way a call goes is declared, never guessed from timers or from the shape of an error:

- ``MLGRID_GATEWAY_TUNNELS=false``: the gateway port, for every call.
- Otherwise the first call of each (service, route) decides once, for the life of the transport:
  the tunnel when the gateway announces a tunnel port and the tunnel opens; the gateway port when
  it announces none, refuses that route, or its tunnel port cannot be reached (for example only
  the gRPC port is forwarded). That is the one fallback, logged when taken.

Credentials: gRPC sends the ``CONNECT`` request in the clear. Towards a plaintext (``grpc://``)
gateway it carries the caller's ``authorization`` header, so the gateway can check who opens a
tunnel. Towards a ``grpcs://`` gateway it carries none (they would cross the network
unencrypted): the tunnel's TLS runs end to end with the gateway (which ends it, checking the
client certificate under mutual TLS, and relays the plaintext to the backend), and every call
through it carries its ``authorization`` metadata inside that TLS, as on the gateway port.

Direct routes: a gateway that offers them (``mlgrid up``; services/gateway/direct_routes.py)
announces the loopback address of the backend of each route above. A client that
reached that gateway on loopback, in plaintext, calls such a backend at its own address, with
no relay at all, once the address has answered, before any credentials went to it, with the
backend's instance id the gateway named. Otherwise (``MLGRID_DIRECT_ROUTES=false``, another
host, TLS, a stale id) the route is tunnelled as above.

Once decided, a route stays: a backend that goes away behind a tunnel gives the same
``TEMPORARILY_UNAVAILABLE`` as behind the gateway port, and the tunnel reconnects by itself (the
gateway picks the route's backend again on each new connection) when one is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc

from mlgrid import _fork
from mlgrid import environment as env
from mlgrid.api.artifacts.v1 import artifacts_service_pb2
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.registry.v1 import registry_service_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2
from mlgrid.protocol import (
    AUTHORIZATION_METADATA,
    RECONNECT_OPTIONS,
    TUNNEL_ROUTE_HEADER,
    TUNNEL_SERVICE_HEADER,
)
from mlgrid.retries import retry_service_config
from mlgrid.tls import authorization_header
from mlgrid.uris import is_loopback_host

log = logging.getLogger(__name__)

#: Services whose calls can be tunnelled: tracking and registry are routed by store, so every
#: call of a client goes to the same backend; artifacts by the scheme the caller passes.
TUNNELLED_SERVICES = {
    "tracking": "mlgrid.api.tracking.v1.TrackingService",
    "registry": "mlgrid.api.registry.v1.RegistryService",
    "artifacts": "mlgrid.api.artifacts.v1.ArtifactsService",
}
#: Each tunnelled service's retry config (see mlgrid.retries).
_RETRIES = {
    "tracking": retry_service_config(tracking_service_pb2.DESCRIPTOR.services_by_name.values()),
    "registry": retry_service_config(registry_service_pb2.DESCRIPTOR.services_by_name.values()),
    "artifacts": retry_service_config(artifacts_service_pb2.DESCRIPTOR.services_by_name.values()),
}
#: Seconds to wait, once per route, for the gateway's announcement and for the tunnel to open.
SETUP_TIMEOUT_S = 2.0


def _proxy_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _connects(channel: grpc.Channel, timeout: float) -> bool:
    """True once ``channel`` is READY; False at its first failure (the tunnel port refused, or
    the gateway answered the CONNECT with an error) or after ``timeout`` seconds."""
    settled = threading.Event()
    final: list[grpc.ChannelConnectivity] = []
    ends = (
        grpc.ChannelConnectivity.READY,
        grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        grpc.ChannelConnectivity.SHUTDOWN,
    )

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state in ends and not settled.is_set():
            final.append(state)
            settled.set()

    with _fork.threads_started() as started:
        channel.subscribe(watch, try_to_connect=True)
    try:
        settled.wait(timeout)
    finally:
        channel.unsubscribe(watch)
        _fork.await_before_fork(started)  # its poller stops within 0.2 s
    return bool(final) and final[0] is grpc.ChannelConnectivity.READY


class Tunnels:
    """The tunnelled channels of one transport: per (service, route) a channel, or None for the
    gateway port, decided at the first call of that route."""

    def __init__(
        self,
        gateway: grpc.Channel,
        host: str,
        channel_options: list[tuple[str, Any]],
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._gateway = gateway
        self._host = host
        self._options = channel_options
        #: TLS credentials of a grpcs:// gateway (its tunnels run TLS with it); None: plaintext.
        self._credentials = credentials
        self._lock = threading.Lock()
        self._port: int | None = None  # None: not asked yet; 0: the gateway offers none
        #: The gateway's direct routes by (full service name, route), asked with the port.
        self._announced: dict[tuple[str, str], common_pb2.DirectRoute] = {}
        #: The (service, route) pairs whose calls go straight to their backend.
        self.direct: set[tuple[str, str]] = set()
        #: The decision per (service, route): its channel, or None for the gateway port.
        self._routes: dict[tuple[str, str], grpc.Channel | None] = {}
        #: The stub made on each decided route's channel (see stub()).
        self.stubs: dict[tuple[str, str], Any] = {}

    def channel(self, service: str, route: str = "") -> grpc.Channel | None:
        """The tunnelled channel for ``service`` ("tracking", "registry", "artifacts") and
        ``route`` (artifacts: ``"<scheme>:"``; "" for the default), or None for the gateway port.
        A dict read after the route's first call."""
        if not env.MLGRID_GATEWAY_TUNNELS.get():
            return None
        key = (service, route)
        if key in self._routes:
            return self._routes[key]
        with self._lock:
            if key not in self._routes:
                port = self._announced_port()
                if port is None:
                    return None  # the gateway cannot be asked now; decide at the next call
                self._routes[key] = self._direct_channel(service, route) or (
                    self._open(service, route, port) if port else None
                )
            return self._routes[key]

    def stub(self, service: str, route: str, make_stub: Callable[[grpc.Channel], Any]) -> Any:
        """The stub on the channel of ``service`` and ``route`` (as :meth:`channel`), made once
        by ``make_stub``; None for the gateway port."""
        channel = self.channel(service, route)
        if channel is None:
            return None
        key = (service, route)
        stub = self.stubs.get(key)
        if stub is None:
            stub = self.stubs.setdefault(key, make_stub(channel))
        return stub

    def _announced_port(self) -> int | None:
        """The gateway's tunnel port (0: it offers none); None when it cannot be asked now."""
        if self._port is None:
            stub = common_pb2_grpc.BackendInfoServiceStub(self._gateway)
            try:
                info = stub.GetBackendInfo(
                    common_pb2.GetBackendInfoRequest(), timeout=SETUP_TIMEOUT_S
                )
            except grpc.RpcError:
                return None
            self._port = info.tunnel_port
            self._announced = {(d.service, d.route): d for d in info.direct_routes}
            if not self._port:
                log.info("the gateway offers no tunnels; calls use its gRPC port")
        return self._port

    def _direct_channel(self, service: str, route: str) -> grpc.Channel | None:
        """A channel straight to the route's backend when the gateway announced one this client
        may use (module docstring), checked to be that backend; else None."""
        if (
            self._credentials is not None
            or not is_loopback_host(self._host)
            or not env.MLGRID_DIRECT_ROUTES.get()
        ):
            return None
        announced = self._announced.get((TUNNELLED_SERVICES[service], route))
        if announced is None or not is_loopback_host(announced.address.rpartition(":")[0]):
            return None
        options = [
            *self._options,
            *RECONNECT_OPTIONS,  # a restarted backend binds the same port again
            ("grpc.service_config", _RETRIES[service]),
        ]
        channel = grpc.insecure_channel(announced.address, options=options)
        stub = common_pb2_grpc.BackendInfoServiceStub(channel)
        try:  # no metadata: nothing of the caller's goes to an address not yet checked
            answered = stub.GetBackendInfo(
                common_pb2.GetBackendInfoRequest(), timeout=SETUP_TIMEOUT_S
            ).instance
        except grpc.RpcError:
            answered = None
        which = f"the {service} backend" + (f" for {route!r}" if route else "")
        if answered != announced.instance:
            channel.close()
            log.info(
                "%s the gateway named at %s %s; its calls go through the gateway",
                which,
                announced.address,
                "did not answer" if answered is None else "is another process now",
            )
            return None
        log.debug("calls to %s go straight to %s", which, announced.address)
        self.direct.add((service, route))
        return channel

    def _connect_headers(self, service: str, route: str) -> str:
        """The CONNECT request's headers, one ``name:value`` a line (gRPC's format)."""
        headers = [f"{TUNNEL_SERVICE_HEADER}:{TUNNELLED_SERVICES[service]}"]
        if route:
            headers.append(f"{TUNNEL_ROUTE_HEADER}:{route}")
        authorization = authorization_header()
        # Only in the clear when the gateway port is too; a value that could end the header
        # line is never sent (each call carries the credentials anyway).
        if (
            authorization
            and self._credentials is None
            and authorization.isprintable()
            and "\n" not in authorization
        ):
            headers.append(f"{AUTHORIZATION_METADATA}:{authorization}")
        return "\n".join(headers)

    def _open(self, service: str, route: str, port: int) -> grpc.Channel | None:
        options = [
            *self._options,
            # The far end is the gateway, near and quick to come back: reconnect within seconds.
            *RECONNECT_OPTIONS,
            ("grpc.http_proxy", f"http://{_proxy_host(self._host)}:{port}"),
            ("grpc.http_connect_headers", self._connect_headers(service, route)),
            # A tunnel is pinned to one replica: an idempotent call that finds it gone is tried
            # again over a new tunnel, which the gateway opens to another replica.
            ("grpc.service_config", _RETRIES[service]),
        ]
        # The target is only a label: the gateway ignores it and picks the backend itself.
        # (Never a real host name, which a no_proxy setting could exempt from the tunnel.)
        label = f"mlgrid-{service}.tunnel:1"
        if self._credentials is not None:
            # TLS runs through the tunnel with the gateway, whose certificate names its host.
            options.append(("grpc.ssl_target_name_override", self._host))
            channel = grpc.secure_channel(label, self._credentials, options=options)
        else:
            channel = grpc.insecure_channel(label, options=options)
        if not _connects(channel, SETUP_TIMEOUT_S):
            channel.close()
            log.info(
                "no tunnel to the %s backend%s (port %d refused or unreachable); its calls use "
                "the gateway's gRPC port (set MLGRID_GATEWAY_TUNNELS=false to skip tunnels)",
                service,
                f" for {route!r}" if route else "",
                port,
            )
            return None
        return channel

    @property
    def in_use(self) -> bool:
        return any(channel is not None for channel in self._routes.values())

    def close(self) -> None:
        with self._lock:
            channels, self._routes = list(self._routes.values()), {}
            self.direct = set()
            self.stubs = {}
        for channel in channels:
            if channel is not None:
                channel.close()
