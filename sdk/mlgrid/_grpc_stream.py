"""A bidirectional stream run by its caller's thread alone: send one message, wait for its reply.

A call pipeline (pipeline.py) is a stream on which each call is one message out and one reply
back. grpcio's public API runs such a stream on three threads: the caller's, one that reads the
request iterator and sends what it yields, and the channel's event loop, which takes every
completion (message sent, message received) from the channel's queue and wakes the thread that
waits for it. Each message thus costs several thread wake-ups and hand-overs of the GIL, which
for mlgrid's small messages is most of the client's CPU.

gRPC's core can also run a call on a completion queue of its own that only the waiting thread
polls: grpcio's "segregated call", which it uses itself for single-threaded unary-stream calls
(``grpc.experimental.ChannelOptions.SingleThreadedUnaryStream``). Here each exchange is ONE batch
of two operations (send a message, receive one), and the caller waits for that batch on the
call's own queue; with gRPC's socket I/O inline (_grpc_io.py) the same thread also does the
socket reads and writes. Measured on a bare echo stream on 2 cores (docs/benchmarks.md, "One
thread per pipelined call"): 0.07 ms of client CPU per round trip instead of 0.27-0.36 ms.

This is grpcio's internal Cython layer, not its public API, so it is used only where it was
tested: grpcio in ``_grpc_io.TESTED_GRPCIO`` (``make compat`` runs the oldest, the dev install the
newest), a channel of grpcio's own class, and ``MLGRID_GRPC_CALLER_THREAD_STREAMS`` not false.
Anywhere else :func:`supported` says no and the pipeline uses the public API.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import grpc

from mlgrid import environment as env
from mlgrid._grpc_io import grpcio_version, tested
from mlgrid._rpc_errors import EndedCall, status_code

# Tags of the call's batches (any object; gRPC hands each back with its completion).
_OPENED = "opened"
_HEADERS = "headers"
_STATUS = "status"
_EXCHANGE = "exchange"
_HALF_CLOSE = "half-close"
_NO_FLAGS = 0


class StreamEnded(EndedCall):
    """The stream ended (its status) before an exchange's reply came: a failed call as gRPC
    presents one, so callers handle it as they handle the public API's errors."""


def _cygrpc() -> Any:
    """grpcio's Cython layer (already loaded by ``import grpc``; it ships no type stubs)."""
    return importlib.import_module("grpc._cython.cygrpc")


@functools.cache
def _grpcio_tested() -> bool:
    return tested(grpcio_version(grpc.__path__[0]))


def supported(channel: grpc.Channel) -> bool:
    """Whether a :class:`CallerThreadStream` can run on ``channel`` (see the module's doc)."""
    if not env.MLGRID_GRPC_CALLER_THREAD_STREAMS.get() or not _grpcio_tested():
        return False
    return hasattr(getattr(channel, "_channel", None), "segregated_call")


class CallerThreadStream:
    """One open stream of ``method`` on ``channel``; used by one thread at a time."""

    def __init__(
        self,
        channel: grpc.Channel,
        method: str,
        metadata: Sequence[tuple[str, str]],
        timeout: float,
    ) -> None:
        cygrpc = _cygrpc()
        self._ops = cygrpc
        metadata = tuple(metadata)
        #: Batches started and not yet completed (gRPC frees the call when none is left).
        self._due = {_OPENED, _HEADERS, _STATUS}
        self._reply: bytes | None = None
        self.status: StreamEnded | None = None
        self._call = channel._channel.segregated_call(  # type: ignore[attr-defined]
            cygrpc.PropagationConstants.GRPC_PROPAGATE_DEFAULTS,
            method.encode(),
            None,
            time.time() + timeout,
            metadata,
            None,
            (
                ((cygrpc.SendInitialMetadataOperation(metadata, _NO_FLAGS),), _OPENED),
                ((cygrpc.ReceiveStatusOnClientOperation(_NO_FLAGS),), _STATUS),
                ((cygrpc.ReceiveInitialMetadataOperation(_NO_FLAGS),), _HEADERS),
            ),
            cygrpc.build_census_context(),
        )

    def exchange(self, request: bytes) -> bytes:
        """Sends ``request`` and returns the reply; raises :class:`StreamEnded` when the stream
        ended instead (and anything the wait raises, e.g. KeyboardInterrupt: gRPC then frees
        the call itself, and this stream must not be used again)."""
        ops = self._ops
        if self.status is None and self._start(
            (ops.SendMessageOperation(request, _NO_FLAGS), ops.ReceiveMessageOperation(_NO_FLAGS)),
            _EXCHANGE,
        ):
            self._wait_for(_EXCHANGE)
            reply, self._reply = self._reply, None
            if reply is not None:
                return reply
        # No reply: the server ended the stream (or it broke); its status says how.
        self._wait_for(_STATUS)
        assert self.status is not None
        raise self.status

    def close(self, wait_s: float) -> threading.Thread | None:
        """Ends the stream: half-closes it, so the server ends its side, and waits for the
        server's status, cancelling the stream after ``wait_s``. Returns the thread that would
        have cancelled it (already told to stop) for a fork to wait for, or None."""
        if not self._due:
            return None  # ended and drained
        if _STATUS in self._due:
            self._start((self._ops.SendCloseFromClientOperation(_NO_FLAGS),), _HALF_CLOSE)
        # Every batch started must be taken from the queue: gRPC frees the call and its queue
        # only then (after the status they all complete at once).
        watchdog = threading.Timer(wait_s, self.cancel)
        watchdog.daemon = True
        watchdog.start()
        try:
            while self._due:
                self._wait_for(next(iter(self._due)))
        finally:
            watchdog.cancel()
        return watchdog

    @property
    def finished(self) -> bool:
        """Every batch of the call has completed and been taken: gRPC has freed it."""
        return not self._due

    def cancel(self) -> None:
        """Cancels the stream (from any thread; harmless once it has ended); a waiting exchange
        then raises StreamEnded."""
        self._call.cancel(grpc.StatusCode.CANCELLED.value[0], "the client ended the pipeline")

    def _start(self, operations: tuple[Any, ...], tag: str) -> bool:
        if self._call.operate(operations, tag):
            self._due.add(tag)
            return True
        return False  # the call has ended: only its status is left to read

    def _wait_for(self, tag: str) -> None:
        """Takes the call's completions from its queue until ``tag``'s batch is done."""
        receive_message = self._ops.OperationType.receive_message
        receive_status = self._ops.OperationType.receive_status_on_client
        while tag in self._due:
            event = self._call.next_event()
            self._due.discard(event.tag)
            for operation in event.batch_operations:
                kind = operation.type()
                if kind == receive_message:
                    self._reply = operation.message()
                elif kind == receive_status:
                    code = status_code(operation.code())
                    details = operation.details() or b""
                    if isinstance(details, bytes):
                        details = details.decode("utf-8", "replace")
                    self.status = StreamEnded(code, details)
