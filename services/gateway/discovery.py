"""Asks backends what they serve (``BackendInfoService.GetBackendInfo``) and records it.

A backend that does not answer yet stays pending; the gateway asks again when a call finds no
route (at most once per second), so a gateway started before its backends catches up by itself.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc

from .channels import ChannelPool
from .routing import RoutingTable

log = logging.getLogger(__name__)

#: Least time between two rounds of asking pending backends again.
RETRY_INTERVAL_S = 1.0


class Discovery:
    """Backends to ask, and what they said."""

    def __init__(self, table: RoutingTable, pool: ChannelPool) -> None:
        self._table = table
        self._pool = pool
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._known: dict[str, common_pb2.GetBackendInfoResponse] = {}
        self._replicas: dict[tuple[object, ...], list[str]] = {}
        self._last_retry = 0.0

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    def add(self, address: str, timeout: float = 5.0) -> bool:
        """Asks ``address`` now (waiting up to ``timeout`` s for it); False leaves it pending."""
        with self._lock:
            if address not in self._pending and address not in self._known:
                self._pending.append(address)
        return self._ask(address, timeout)

    def _ask(self, address: str, timeout: float) -> bool:
        stub = common_pb2_grpc.BackendInfoServiceStub(self._pool.channel(address))
        try:
            info = stub.GetBackendInfo(
                common_pb2.GetBackendInfoRequest(), timeout=timeout, wait_for_ready=timeout > 0
            )
        except grpc.RpcError as err:
            log.warning("backend %s did not say what it serves yet: %s", address, err.details())
            return False
        # Backends that announce the same services and schemes are replicas of one backend:
        # their routes name all of them, and calls are spread over the group (replicas.py).
        signature = tuple(sorted((s.service, tuple(sorted(s.schemes))) for s in info.services))
        with self._lock:
            self._known[address] = info
            if address in self._pending:
                self._pending.remove(address)
            group = self._replicas.setdefault(signature, [])
            if address not in group:
                group.append(address)
            routed = ",".join(group)
        by_full_name = {s.full_name: s.key for s in self._table.services.values()}
        for served in info.services:
            key = by_full_name.get(served.service)
            if key is not None:
                self._table.announce(key, served.schemes, routed, replicas_of=signature)
        log.info(
            "backend %s serves %s",
            address,
            "; ".join(f"{s.service} {list(s.schemes)}" for s in info.services) or "nothing",
        )
        return True

    def instance(self, address: str) -> str:
        """The instance id the backend at ``address`` gave when last asked ("" if never)."""
        with self._lock:
            info = self._known.get(address)
        return info.instance if info is not None else ""

    def retry_pending(self) -> bool:
        """Asks pending backends again (rate-limited); True when one of them answered."""
        now = time.monotonic()
        with self._lock:
            if not self._pending or now - self._last_retry < RETRY_INTERVAL_S:
                return False
            self._last_retry = now
            pending = list(self._pending)
        return any([self._ask(address, timeout=0.5) for address in pending])
