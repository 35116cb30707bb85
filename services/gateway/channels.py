"""Channels and multicallables to the backends, created once and reused by every call.

Creating a channel (and even a multicallable) costs far more than forwarding a small call, so
both are cached: one channel per backend address, one multicallable per (address, method). The
serializers are identity functions (``None``), so request and response bytes pass through as is.

Every channel balances over the replicas its address names and retries idempotent calls on
another one (see :mod:`.replicas`).
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from mlgrid.protocol import CHANNEL_OPTIONS, RECONNECT_OPTIONS

from .methods import MethodKind
from .replicas import channel_target


class ChannelPool:
    """Backend channels and raw-bytes multicallables, keyed by address and method."""

    def __init__(
        self, options: list[tuple[str, int]] | None = None, service_config: str | None = None
    ) -> None:
        # The client-side keepalive that mlgrid's servers accept without too_many_pings.
        self._options: list[tuple[str, int | str]] = [
            *(options or [*CHANNEL_OPTIONS, *RECONNECT_OPTIONS])
        ]
        if service_config is not None:
            self._options.append(("grpc.service_config", service_config))
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._callables: dict[tuple[str, str], Any] = {}

    def channel(self, address: str) -> grpc.Channel:
        channel = self._channels.get(address)
        if channel is None:
            with self._lock:
                channel = self._channels.get(address)
                if channel is None:
                    channel = grpc.insecure_channel(channel_target(address), options=self._options)
                    self._channels[address] = channel
        return channel

    def multicallable(self, address: str, kind: MethodKind) -> Any:
        """The raw-bytes multicallable of ``kind`` on the backend at ``address``."""
        key = (address, kind.path)
        found = self._callables.get(key)
        if found is not None:
            return found
        channel = self.channel(address)
        if kind.client_streaming and kind.server_streaming:
            made: Any = channel.stream_stream(kind.path, None, None)
        elif kind.client_streaming:
            made = channel.stream_unary(kind.path, None, None)
        elif kind.server_streaming:
            made = channel.unary_stream(kind.path, None, None)
        else:
            made = channel.unary_unary(kind.path, None, None)
        with self._lock:
            return self._callables.setdefault(key, made)

    def close(self) -> None:
        with self._lock:
            channels = list(self._channels.values())
            self._channels.clear()
            self._callables.clear()
        for channel in channels:
            channel.close()
