"""Client side of the gateway's tunnels (services/gateway/tunnel.py).

A gateway may announce a tunnel port (``GetBackendInfoResponse.tunnel_port``). Tracking and
registry calls then go over a channel that gRPC itself opens through the gateway with HTTP
``CONNECT`` (the ``grpc.http_proxy`` channel argument), pinned to that service's backend: one
gRPC hop instead of two, which is most of a small call's cost. Artifact calls get one tunnel
per URI scheme (header ``mlgrid-route: <scheme>:``), and each call goes down the tunnel of its
URI's scheme: bytes are relayed, not re-sent message by message. Everything else (projects,
calls naming a store with ``MLGRID_STORE_URI``) stays on the gateway's own port, where the
gateway routes every call by its content.

Tunnels are an optimisation, never a requirement: no announcement, a port that cannot be
reached (a load balancer that only forwards the gRPC port), ``MLGRID_GATEWAY_TUNNELS=false`` or
a TLS (``grpcs://``) gateway all mean the gateway port, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

from mlgrid import environment as env
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.protocol import TUNNEL_ROUTE_HEADER, TUNNEL_SERVICE_HEADER

log = logging.getLogger(__name__)

#: Services whose calls can be tunnelled: tracking and registry are routed by store, so every
#: call of a client goes to the same backend; artifacts by the scheme the caller passes.
TUNNELLED_SERVICES = {
    "tracking": "mlgrid.api.tracking.v1.TrackingService",
    "registry": "mlgrid.api.registry.v1.RegistryService",
    "artifacts": "mlgrid.api.artifacts.v1.ArtifactsService",
}
#: Routed by the store the caller names: tunnelled only for the default store.
_STORE_ROUTED = frozenset({"tracking", "registry"})
#: Seconds to wait for the gateway's announcement and for a tunnel to connect, once.
SETUP_TIMEOUT_S = 2.0
#: After a tunnelled call fails, calls use the gateway port this long before a tunnel is tried again.
RETRY_AFTER_S = 30.0
#: After the tunnel port could not be reached at all (e.g. only the gRPC port is forwarded), the
#: gateway port is used this long: each new attempt costs up to SETUP_TIMEOUT_S.
UNREACHABLE_RETRY_AFTER_S = 600.0


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

    channel.subscribe(watch, try_to_connect=True)
    try:
        settled.wait(timeout)
    finally:
        channel.unsubscribe(watch)
    return bool(final) and final[0] is grpc.ChannelConnectivity.READY


class Tunnels:
    """The tunnelled channels of one transport, opened on first use."""

    def __init__(
        self, gateway: grpc.Channel, host: str, channel_options: list[tuple[str, Any]]
    ) -> None:
        self._gateway = gateway
        self._host = host
        self._options = channel_options
        self._lock = threading.Lock()
        self._port: int | None = None  # None: not asked yet; 0: the gateway offers none
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        #: Per (service, route): no tunnel attempt before this time (monotonic seconds).
        self._unusable_until: dict[tuple[str, str], float] = {}
        #: After a tunnelled call failed: no tunnel of any kind before this time.
        self._all_unusable_until = 0.0

    def channel(self, service: str, route: str = "") -> grpc.Channel | None:
        """The tunnelled channel for ``service`` ("tracking", "registry", "artifacts") and
        routing value ``route`` (artifacts: ``"<scheme>:"``), or None to use the gateway port.
        Cheap after the first call."""
        # Read per call: a store named later (MLGRID_STORE_URI) must reach the gateway port,
        # which routes by it, even when a tunnel to the default store is already open.
        if not env.MLGRID_GATEWAY_TUNNELS.get() or (
            service in _STORE_ROUTED and env.MLGRID_STORE_URI.get()
        ):
            return None
        key = (service, route)
        found = self._channels.get(key)
        if found is not None:
            return found
        now = time.monotonic()
        if now < self._all_unusable_until or now < self._unusable_until.get(key, 0.0):
            return None
        with self._lock:
            found = self._channels.get(key)
            if found is None:
                found = self._open(service, route)
                if found is not None:
                    self._channels[key] = found
        return found

    def _announced_port(self) -> int:
        if self._port is None:
            stub = common_pb2_grpc.BackendInfoServiceStub(self._gateway)
            try:
                info = stub.GetBackendInfo(
                    common_pb2.GetBackendInfoRequest(), timeout=SETUP_TIMEOUT_S
                )
            except grpc.RpcError:
                return 0  # gateway unreachable now: ask again next time, never cache that
            self._port = info.tunnel_port
        return self._port

    def _open(self, service: str, route: str) -> grpc.Channel | None:
        port = self._announced_port()
        if not port:
            return None
        headers = f"{TUNNEL_SERVICE_HEADER}:{TUNNELLED_SERVICES[service]}"
        if route:
            headers += f"\n{TUNNEL_ROUTE_HEADER}:{route}"
        options = [
            *self._options,
            ("grpc.http_proxy", f"http://{_proxy_host(self._host)}:{port}"),
            ("grpc.http_connect_headers", headers),
        ]
        # The target is only a label: the gateway ignores it and picks the backend itself.
        channel = grpc.insecure_channel(f"mlgrid-{service}.tunnel:1", options=options)
        if not _connects(channel, SETUP_TIMEOUT_S):
            channel.close()
            log.debug("no tunnel to the %s backend (%r); using the gateway port", service, route)
            self._unusable_until[(service, route)] = time.monotonic() + UNREACHABLE_RETRY_AFTER_S
            return None
        return channel

    def failed(self) -> None:
        """A tunnelled call could not reach its backend: use the gateway port for a while (it
        names the backend that is down and notices one that moved)."""
        with self._lock:
            # Dropped, not closed: other threads may be mid-call on them (closing would cancel
            # those calls); a channel nobody holds is closed when it is collected.
            self._channels = {}
            self._all_unusable_until = time.monotonic() + RETRY_AFTER_S
            self._port = None

    @property
    def in_use(self) -> bool:
        return bool(self._channels)

    def close(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel.close()
