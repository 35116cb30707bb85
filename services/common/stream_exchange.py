"""A server stream's reply and the next request in ONE batch: half the wake-ups per message.

grpcio's synchronous server runs a bidirectional stream's handler on a worker thread and every
completion on its poller thread. Through its public API each exchange of a call pipeline
(services/common/pipeline.py) takes two batches, each completed on the poller and handed to the
worker: one that receives the next request (``next(request_iterator)``) and one that sends the
reply (the handler's ``yield``, which waits until the message is sent). Here the reply and the
receive of the next request go in one batch, the shape the client's side has too
(sdk/mlgrid/_grpc_stream.py): one completion and one hand-off per exchange.

This rides grpcio's private server internals (the request iterator's call and state, and the
helpers its own handlers use to send metadata and finish a call), so it is used only where those
are the ones it was written and tested against: grpcio in ``mlgrid._grpc_io.TESTED_GRPCIO``
(`make compat` runs the oldest, the dev install the newest), a request iterator of grpcio's own
class (:func:`supported` says so), and unless ``MLGRID_GRPC_SERVER_STREAM_EXCHANGES=false``. Anywhere else the pipeline keeps the public API.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from mlgrid import environment as env
from mlgrid._grpc_io import grpcio_version, tested

# grpcio's internals (no type stubs), checked by supported() before any use.
_grpc_server: Any
cygrpc: Any
try:
    _grpc_server = importlib.import_module("grpc._server")
    cygrpc = importlib.import_module("grpc._cython.cygrpc")
except ImportError:  # pragma: no cover - a grpcio laid out otherwise: the public API serves
    _grpc_server = cygrpc = None

Request = TypeVar("Request", bound=Message)

#: The token of an exchange batch among the call's due completions (grpcio keeps a set of them
#: and finishes the call when none is left; its own tokens are other strings).
_EXCHANGE = "mlgrid exchange"
_SEND = "mlgrid send"
_INTERNALS = (
    "_possibly_finish_call",
    "_get_initial_metadata_operation",
    "_is_rpc_state_active",
    "_RequestIterator",
)


@functools.cache
def _grpcio_ready() -> bool:
    if _grpc_server is None or not tested(grpcio_version(grpc.__path__[0])):
        return False
    return all(hasattr(_grpc_server, name) for name in _INTERNALS)


def supported(request_iterator: Any) -> bool:
    """Whether a stream's requests can be taken in exchanges here (see the module's doc)."""
    return (
        bool(env.MLGRID_GRPC_SERVER_STREAM_EXCHANGES.get())
        and _grpcio_ready()
        and type(request_iterator) is _grpc_server._RequestIterator
    )


class StreamExchange(Generic[Request]):
    """The requests of one server stream, each taken with the reply to the one before.

    Used by the stream's handler thread alone; the completions arrive on the server's poller
    thread, which only stores what arrived and wakes the handler."""

    def __init__(self, request_iterator: Any, parse: Callable[[bytes], Request]) -> None:
        self._state = request_iterator._state
        self._call = request_iterator._call
        self._parse = parse
        self._received: bytes | None = None

    def exchange(self, reply: Message | None) -> Request | None:
        """Sends ``reply`` (none before the first request) and returns the next request: None
        when the client has half-closed the stream, or the call has ended (cancelled, past its
        deadline, the server stopping). Raises DecodeError for a request that does not parse."""
        operations = self._reply_operations(reply)
        operations.append(cygrpc.ReceiveMessageOperation(0))
        if not self._run(operations, _EXCHANGE):
            return None
        received, self._received = self._received, None
        if received is None:
            return None
        try:
            return self._parse(received)
        except DecodeError:
            raise DecodeError("a request of the stream does not parse") from None

    def send(self, reply: Message) -> None:
        """Sends ``reply`` without waiting for another request (the stream's last reply)."""
        self._run(self._reply_operations(reply), _SEND)

    def _reply_operations(self, reply: Message | None) -> list[Any]:
        if reply is None:
            return []
        state = self._state
        operations = []
        with state.condition:
            if state.initial_metadata_allowed:  # the stream's first message: headers first
                operations.append(_grpc_server._get_initial_metadata_operation(state, None))
                state.initial_metadata_allowed = False
        operations.append(cygrpc.SendMessageOperation(reply.SerializeToString(), 0))
        return operations

    def _run(self, operations: list[Any], token: str) -> bool:
        """Starts one batch and waits for its completion; False when the call is no longer
        active (nothing started, or it ended meanwhile)."""
        state = self._state
        with state.condition:
            if not _grpc_server._is_rpc_state_active(state):
                return False
            self._call.start_server_batch(tuple(operations), self._completed(token))
            state.due.add(token)
            while token in state.due:
                state.condition.wait()
            return bool(_grpc_server._is_rpc_state_active(state))

    def _completed(self, token: str) -> Callable[[Any], Any]:
        """The batch's tag: grpcio's poller calls it with the completion event."""
        state = self._state

        def completed(event: Any) -> Any:
            with state.condition:
                if token == _EXCHANGE:
                    self._received = event.batch_operations[-1].message()
                state.condition.notify_all()
                return _grpc_server._possibly_finish_call(state, token)

        return completed
