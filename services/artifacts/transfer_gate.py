"""At most N artifact transfers at once per process: backpressure instead of memory growth.

Every transfer holds buffers (gRPC's receive window, the repository's staging buffers, glibc
heaps of the thread). Past the limit a transfer waits for a slot before it reads a byte, so HTTP/2
flow control holds its sender back and the process's memory stays bounded however many clients
upload at once. A transfer that cannot get a slot within the wait (or before its deadline) is
refused with RESOURCE_EXHAUSTED naming the limit, so clients back off rather than pile up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from mlgrid.environment import MLGRID_ARTIFACTS_MAX_TRANSFERS, MLGRID_ARTIFACTS_TRANSFER_WAIT
from mlgrid.exceptions import RequestLimitExceeded


class TransferGate:
    """A counting gate for transfers; ``limit`` and ``wait_seconds`` default to the settings."""

    def __init__(self, limit: int | None = None, wait_seconds: float | None = None) -> None:
        self.limit = limit or MLGRID_ARTIFACTS_MAX_TRANSFERS.get()
        self.wait_seconds = wait_seconds or MLGRID_ARTIFACTS_TRANSFER_WAIT.get()
        self._slots = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        #: Transfers holding a slot now.
        self.in_use = 0

    @contextmanager
    def slot(self, context: grpc.ServicerContext | None) -> Iterator[None]:
        """Holds one slot for the block, waiting at most the wait or the call's deadline."""
        wait = self.wait_seconds
        remaining = context.time_remaining() if context is not None else None
        if remaining is not None:
            wait = max(0.0, min(wait, remaining))
        if not self._slots.acquire(timeout=wait):
            raise RequestLimitExceeded(
                f"the artifacts service is running {self.limit} transfers, its limit "
                f"(MLGRID_ARTIFACTS_MAX_TRANSFERS), and none ended within {wait:.0f} s; "
                "retry later"
            )
        with self._lock:
            self.in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= 1
            self._slots.release()
