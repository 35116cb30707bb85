"""Client side of the gateway's tunnels (services/gateway/tunnel.py).

A gateway may announce a tunnel port (``GetBackendInfoResponse.tunnel_port``). Tracking and
registry calls then go over a channel that gRPC itself opens through the gateway with HTTP
``CONNECT`` (the ``grpc.http_proxy`` channel argument), pinned to that service's backend: one
gRPC hop instead of two, which is most of a small call's cost. Everything else (artifacts,
projects, calls naming a store with ``MLGRID_STORE_URI``) stays on the gateway's own port,
where the gateway routes every call by its content.

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

log = logging.getLogger(__name__)

#: Services whose calls can be tunnelled: routed by store, so every call of a client goes to
#: the same backend.
TUNNELLED_SERVICES = {
    "tracking": "mlgrid.api.tracking.v1.TrackingService",
    "registry": "mlgrid.api.registry.v1.RegistryService",
}
#: Seconds to wait for the gateway's announcement and for a tunnel to connect, once.
SETUP_TIMEOUT_S = 2.0
#: After a tunnelled call fails, calls use the gateway port this long before a tunnel is tried again.
RETRY_AFTER_S = 30.0
#: After the tunnel port could not be reached at all (e.g. only the gRPC port is forwarded), the
#: gateway port is used this long: each new attempt costs up to SETUP_TIMEOUT_S.
UNREACHABLE_RETRY_AFTER_S = 600.0


def _proxy_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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
        self._channels: dict[str, grpc.Channel] = {}
        self._unusable_until: dict[str, float] = {}

    def channel(self, service: str) -> grpc.Channel | None:
        """The tunnelled channel for ``service`` ("tracking", "registry"), or None to use the
        gateway port. Cheap after the first call."""
        # Read per call: a store named later (MLGRID_STORE_URI) must reach the gateway port,
        # which routes by it, even when a tunnel to the default store is already open.
        if env.MLGRID_STORE_URI.get() or not env.MLGRID_GATEWAY_TUNNELS.get():
            return None
        found = self._channels.get(service)
        if found is not None:
            return found
        if time.monotonic() < self._unusable_until.get(service, 0.0):
            return None
        with self._lock:
            found = self._channels.get(service)
            if found is None:
                found = self._open(service)
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

    def _open(self, service: str) -> grpc.Channel | None:
        port = self._announced_port()
        if not port:
            return None
        options = [
            *self._options,
            ("grpc.http_proxy", f"http://{_proxy_host(self._host)}:{port}"),
            ("grpc.http_connect_headers", f"mlgrid-service:{TUNNELLED_SERVICES[service]}"),
        ]
        # The target is only a label: the gateway ignores it and picks the backend itself.
        channel = grpc.insecure_channel(f"mlgrid-{service}.tunnel:1", options=options)
        try:
            grpc.channel_ready_future(channel).result(timeout=SETUP_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            channel.close()
            log.debug("tunnel to the %s backend did not connect; using the gateway port", service)
            self._unusable_until[service] = time.monotonic() + UNREACHABLE_RETRY_AFTER_S
            return None
        self._channels[service] = channel
        return channel

    def failed(self) -> None:
        """A tunnelled call could not reach its backend: use the gateway port for a while (it
        names the backend that is down and notices one that moved)."""
        with self._lock:
            # Dropped, not closed: other threads may be mid-call on them (closing would cancel
            # those calls); a channel nobody holds is closed when it is collected.
            self._channels = {}
            until = time.monotonic() + RETRY_AFTER_S
            for service in TUNNELLED_SERVICES:
                self._unusable_until[service] = until
            self._port = None

    @property
    def in_use(self) -> bool:
        return bool(self._channels)

    def close(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel.close()
