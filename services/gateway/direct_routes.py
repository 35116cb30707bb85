"""Direct routes: a client on the gateway's own host may call a backend at its own address.

Behind a tunnel the gateway still relays every byte: a read and a write of each message in two
Python threads, about a tenth of a small call's CPU with 8 clients logging at once on 2 cores.
A local stack (``mlgrid up``) runs every backend on this host's loopback, where a client on the
same host can reach it without any relay. So a gateway started with direct routes on tells its
callers, in GetBackendInfo, the address of each route a client could tunnel to (the default
tracking and registry backends, the artifacts backend of each URI scheme) when that backend is
one process on loopback.

What keeps it safe:

- Only a plaintext gateway offers them (a TLS gateway, perhaps with client certificates, would
  otherwise be stepped around), and only loopback addresses are announced: a remote client has
  nothing it could reach. The client uses one only when it reached the gateway on loopback.
- The backend checks every call's credentials itself, as it does for tunnelled calls
  (services/common/auth): the gateway's check of a tunnel's CONNECT was never the only one.
- Each route names the backend's instance id, new at each start. The client asks the address for
  it, without credentials, before its first call, so a port that another process holds is never
  sent anything else.
- Replicated backends are not announced: the gateway spreads their tunnels over the replicas.

The client side is in sdk/mlgrid/tunnels.py.
"""

from __future__ import annotations

from mlgrid.api.common.v1 import common_pb2
from mlgrid.uris import is_loopback_host

from .discovery import Discovery
from .methods import RouteBy
from .routing import DEFAULT, RoutingTable


def loopback_address(address: str) -> bool:
    """Whether ``address`` is one ``host:port`` on loopback (not a list of replicas)."""
    if "," in address or address.startswith("unix:"):
        return False
    host, sep, port = address.rpartition(":")
    return bool(sep) and port.isdigit() and is_loopback_host(host)


def _tunnel_route(route_by: RouteBy, key: str) -> str | None:
    """The tunnel route (``mlgrid-route``) a routing key is reached by; None: not tunnelled."""
    if route_by is RouteBy.STORE_METADATA:
        return "" if key == DEFAULT else None  # a named store goes through the gateway port
    if route_by is RouteBy.URI_FIELD:
        return f"{key}:" if key != DEFAULT else None  # artifact calls always carry a URI
    return None  # projects: routed per call by backend name


def direct_routes(table: RoutingTable, discovery: Discovery) -> list[common_pb2.DirectRoute]:
    """The tunnel routes a local client may call directly, as the table has them now."""
    found = []
    for route in table.routes():
        service = table.services[route.service]
        tunnel_route = _tunnel_route(service.route_by, route.scheme)
        if tunnel_route is None or not loopback_address(route.address):
            continue
        instance = discovery.instance(route.address)
        if instance:  # a configured route the gateway never asked: nothing to check it by
            found.append(
                common_pb2.DirectRoute(
                    service=service.full_name,
                    route=tunnel_route,
                    address=route.address,
                    instance=instance,
                )
            )
    return found
