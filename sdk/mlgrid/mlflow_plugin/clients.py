"""One SDK client per gateway, shared by the plugin's stores and artifact repositories.

MLflow builds a store per call site (and an artifact repository per URI); all of them that name
the same gateway share one :class:`mlgrid.client.Client`, and so one gRPC channel.
"""

from __future__ import annotations

import threading

from mlgrid.client import Client

from .uris import Gateway

_clients: dict[Gateway, Client] = {}
_lock = threading.Lock()


def client_for(gateway: Gateway) -> Client:
    """The SDK client of ``gateway`` (made on first use)."""
    with _lock:
        client = _clients.get(gateway)
        if client is None:
            client = Client(tracking_uri=gateway.sdk_uri, registry_uri=gateway.sdk_uri)
            _clients[gateway] = client
        return client
