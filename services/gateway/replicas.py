"""Several replicas behind one route: how the gateway spreads calls over them.

A route's address names one backend (``host:port``, ``unix:path``) or several replicas of it:
a name that resolves to several addresses (gRPC's default resolver is DNS, so a Kubernetes
headless Service's ``name:port`` gives every ready pod), a comma-separated list
(``10.0.0.5:7000,10.0.0.6:7000``; discovery groups backends that announce the same services and
schemes into such a list) or an explicit ``dns:///name:port``.

Forwarded calls use gRPC's own machinery, configured once per channel (:func:`service_config`):
``round_robin`` over every address (re-resolved when a connection fails), client-side health
checks (a replica draining after SIGTERM reports NOT_SERVING and gets no new calls), and retries
on UNAVAILABLE for the methods the contracts declare idempotent, so a replica killed mid-call
costs a reader nothing. Tunnels are raw TCP: :class:`ReplicaPicker` spreads them over the
replicas and skips ones that refuse the connection.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Iterable

from mlgrid.retries import retry_method_config

from .methods import MethodKind

DNS_PREFIX = "dns:"


def replica_addresses(address: str) -> list[str]:
    """The replica addresses a route's address names (one, or each of a comma list)."""
    return [part.strip() for part in address.split(",") if part.strip()]


def is_replicated(address: str) -> bool:
    """Whether ``address`` may name more than one backend process."""
    return "," in address or address.startswith(DNS_PREFIX)


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"replica address {address!r} is not 'host:port'")
    return host.strip("[]"), int(port)


def _resolve(address: str) -> list[tuple[int, str, int]]:
    """(family, ip, port) of every address ``host:port`` resolves to, in resolver order."""
    host, port = _split_host_port(address)
    found: list[tuple[int, str, int]] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        entry = (int(family), str(sockaddr[0]), int(sockaddr[1]))
        if entry not in found:
            found.append(entry)
    return found


def channel_target(address: str) -> str:
    """The gRPC target of a route's address.

    One address is used as is. A list becomes gRPC's ``ipv4:``/``ipv6:`` list of resolved
    addresses (gRPC has no target naming several host names); ``dns:`` names pass through and
    gRPC's resolver follows them.
    """
    if not is_replicated(address) or address.startswith(DNS_PREFIX):
        return address
    resolved: list[tuple[int, str, int]] = []
    for replica in replica_addresses(address):
        if replica.startswith("unix:"):
            raise ValueError(
                f"replica list {address!r}: unix sockets cannot be balanced; use host:port"
            )
        resolved.extend(_resolve(replica))
    v4 = [f"{ip}:{port}" for family, ip, port in resolved if family == socket.AF_INET]
    if v4:
        return "ipv4:" + ",".join(v4)
    return "ipv6:" + ",".join(f"[{ip}]:{port}" for _, ip, port in resolved)


def service_config(methods: Iterable[MethodKind]) -> str:
    """The gRPC service config of every backend channel (JSON)."""
    config: dict[str, object] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        # The whole-server status ("") that mlgrid's servers set NOT_SERVING while draining.
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": retry_method_config(kind.path for kind in methods if kind.idempotent),
    }
    return json.dumps(config)


class ReplicaPicker:
    """Spreads tunnels over a route's replicas: each connection starts at the next replica and
    moves on past ones that refuse it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}

    def order(self, address: str) -> list[tuple[str, int] | str]:
        """The replicas of ``address`` to try, in order (``unix:`` paths as strings)."""
        if address.startswith("unix:"):
            return [address]
        # Every address each name resolves to: a headless Service's name gives every pod.
        names = (
            [address[len(DNS_PREFIX) :].lstrip("/")]
            if address.startswith(DNS_PREFIX)
            else replica_addresses(address)
        )
        candidates: list[tuple[str, int] | str] = [
            (ip, port) for name in names for _, ip, port in _resolve(name)
        ]
        if len(candidates) < 2:
            return candidates
        with self._lock:
            counter = self._counters.setdefault(address, itertools.count())
            start = next(counter) % len(candidates)
        return candidates[start:] + candidates[:start]
