"""A gRPC channel whose calls run the servicers in the caller's thread (embedded mode).

Embedded mode used to serve its services on a private unix socket and send every call through
it: each ``log_metric`` paid for HTTP/2 framing both ways and two thread hand-offs (the caller's
to gRPC's poller, the poller's to a server worker), about 1 ms on a busy machine. This channel
keeps everything else a call goes through and drops only the socket:

* the same generated stubs call it (it is a :class:`grpc.Channel`);
* requests and responses are serialised and parsed by the same functions as on the wire, so the
  servicer gets exactly the message a socket would deliver and the caller never shares an object
  with the servicer; a message over :data:`~mlgrid.protocol.MAX_MESSAGE_BYTES` is refused with
  RESOURCE_EXHAUSTED, as gRPC refuses it;
* the handler is found, and wrapped by the same server interceptors (error mapping, call scope,
  auth when on), through :class:`grpc.GenericRpcHandler` and :class:`grpc.ServerInterceptor`,
  the interfaces a gRPC server uses;
* a failed call raises a :class:`grpc.RpcError` that is also a :class:`grpc.Call` with the code,
  details and trailing metadata (the ``google.rpc.Status`` with its ErrorInfo) the servicer set,
  so the SDK maps it to the same typed exception as a socket's error.

Each call runs in a fresh :mod:`contextvars` context, as on a server worker thread: the server's
per-call state (call scope, identity) never leaks into the caller. What differs from a socket:
the servicer runs on the caller's thread, so a deadline cannot interrupt it; a call that ends
past its deadline is reported DEADLINE_EXCEEDED (its write may have happened, as with gRPC) and
its call scope is ended then. Response streams are produced as the caller reads them.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn

import grpc

from mlgrid._rpc_errors import EndedCall
from mlgrid.protocol import MAX_MESSAGE_BYTES

#: What :meth:`InProcessContext.peer` answers (a socket's peer would be ``unix:...``).
PEER = "inprocess:"


class _HandlerCallDetails(grpc.HandlerCallDetails):
    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class _Aborted(Exception):
    """Raised by abort(), as gRPC's context raises a bare Exception to end the handler."""


class InProcessRpcError(EndedCall):
    """A failed in-process call: what the caller of a socket would have received."""


class InProcessContext(grpc.ServicerContext):
    """The servicer's view of an in-process call (what gRPC's server context offers)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout: float | None) -> None:
        self._metadata = metadata
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._callbacks: list[Callable[[], None]] = []
        self._ended = False
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: tuple[tuple[str, Any], ...] = ()
        #: A request the caller streamed that could not be sent (too large): the caller's
        #: error, whatever the servicer made of its stream ending.
        self.send_error: InProcessRpcError | None = None

    # -- what servicers and interceptors use --------------------------------------------------

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return PEER

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> Any:
        return {}

    def time_remaining(self) -> Any:  # None without a deadline, as gRPC's
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def is_active(self) -> bool:
        return not self._ended and not self.past_deadline()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self._ended:
            return False
        self._callbacks.append(callback)
        return True

    def cancel(self) -> None:
        self.end()

    def end(self) -> None:
        """The call is over (answered, failed, abandoned): runs the termination callbacks."""
        if self._ended:
            return
        self._ended = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        if code is grpc.StatusCode.OK:
            raise ValueError("abort() needs a status code other than OK")
        self._code = code
        self._details = details or ""
        raise _Aborted(details)

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self._trailing = tuple(status.trailing_metadata or ())
        self.abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_details(self, details: str) -> None:
        self._details = details

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Iterable[tuple[str, Any]]) -> None:
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._trailing

    def send_initial_metadata(self, initial_metadata: Iterable[tuple[str, Any]]) -> None:
        return None

    def set_compression(self, compression: grpc.Compression) -> None:
        return None

    def disable_next_message_compression(self) -> None:
        return None

    # -- how the call ends, as the caller sees it ---------------------------------------------

    def error(self, exc: BaseException | None) -> InProcessRpcError | None:
        """The caller's error for a handler that raised ``exc`` (or returned), else None."""
        if self.send_error is not None:
            return self.send_error
        if self.past_deadline():
            return InProcessRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        code = self._code
        if code is not None and code is not grpc.StatusCode.OK:
            return InProcessRpcError(code, self._details, self._trailing)
        if exc is not None:
            return InProcessRpcError(
                grpc.StatusCode.UNKNOWN, f"Exception calling application: {exc}"[:2000]
            )
        return None


Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None


def _transcode(message: Any, serializer: Serializer, deserializer: Deserializer) -> Any:
    """The message as the other side of a socket would parse it; too large: RESOURCE_EXHAUSTED."""
    data = serializer(message) if serializer is not None else message
    if len(data) > MAX_MESSAGE_BYTES:
        raise InProcessRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Sent message larger than max ({len(data)} vs. {MAX_MESSAGE_BYTES})",
        )
    return deserializer(data) if deserializer is not None else data


def _unimplemented(method: str) -> InProcessRpcError:
    return InProcessRpcError(grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {method}")


class HandlerRecorder:
    """Stands in for a grpc.Server while services register: keeps their handlers."""

    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:  # type: ignore[type-arg]
        self.handlers.append(grpc.method_handlers_generic_handler(service, handlers))


class InProcessChannel(grpc.Channel):
    """A channel to ``handlers`` (tried in order, as a server tries its generic handlers),
    each call passing through ``interceptors`` first."""

    def __init__(
        self,
        handlers: Sequence[grpc.GenericRpcHandler],
        interceptors: Sequence[grpc.ServerInterceptor] = (),
    ) -> None:
        self._handlers = tuple(handlers)
        self._interceptors = tuple(interceptors)

    def _lookup(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        for handler in self._handlers:
            found = handler.service(details)
            if found is not None:
                return found
        return None

    def handler(self, method: str, metadata: Any) -> tuple[grpc.RpcMethodHandler, Any]:
        """The intercepted handler of ``method`` for one call, and that call's metadata."""
        call_metadata = tuple((key, value) for key, value in metadata or ())
        details = _HandlerCallDetails(method, call_metadata)
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]
        continuation = self._lookup
        for interceptor in reversed(self._interceptors):
            continuation = _chain(interceptor, continuation)
        found = continuation(details)
        if found is None:
            raise _unimplemented(method)
        return found, call_metadata

    # -- grpc.Channel ----------------------------------------------------------------------------

    def unary_unary(self, method: str, request_serializer=None, response_deserializer=None, **_):  # type: ignore[no-untyped-def,override]
        return _Unary(self, method, request_serializer, response_deserializer, False)

    def stream_unary(self, method: str, request_serializer=None, response_deserializer=None, **_):  # type: ignore[no-untyped-def,override]
        return _Unary(self, method, request_serializer, response_deserializer, True)

    def unary_stream(self, method: str, request_serializer=None, response_deserializer=None, **_):  # type: ignore[no-untyped-def,override]
        return _Streaming(self, method, request_serializer, response_deserializer, False)

    def stream_stream(self, method: str, request_serializer=None, response_deserializer=None, **_):  # type: ignore[no-untyped-def,override]
        return _Streaming(self, method, request_serializer, response_deserializer, True)

    def subscribe(self, callback: Callable[..., None], try_to_connect: bool = False) -> None:
        callback(grpc.ChannelConnectivity.READY)  # nothing to connect

    def unsubscribe(self, callback: Callable[..., None]) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> InProcessChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _chain(
    interceptor: grpc.ServerInterceptor,
    continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
) -> Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]:
    return lambda details: interceptor.intercept_service(continuation, details)


class _Method:
    """One stub method: how its messages cross, and which handler kind serves it."""

    def __init__(
        self,
        channel: InProcessChannel,
        method: str,
        request_serializer: Serializer,
        response_deserializer: Deserializer,
        request_streaming: bool,
    ) -> None:
        self._channel = channel
        self._method = method
        self._serialize = request_serializer
        self._deserialize = response_deserializer
        self._request_streaming = request_streaming

    def _start(
        self, request: Any, metadata: Any, timeout: float | None, response_streaming: bool
    ) -> tuple[Callable[..., Any], Any, InProcessContext, grpc.RpcMethodHandler]:
        handler, call_metadata = self._channel.handler(self._method, metadata)
        kind = ("stream" if self._request_streaming else "unary") + (
            "_stream" if response_streaming else "_unary"
        )
        behavior = getattr(handler, kind, None)
        if behavior is None:
            raise _unimplemented(self._method)
        parse = handler.request_deserializer
        context = InProcessContext(call_metadata, timeout)
        if self._request_streaming:
            arg: Any = self._requests(request, parse, context)
        else:
            arg = _transcode(request, self._serialize, parse)
        return behavior, arg, context, handler

    def _requests(
        self, requests: Iterable[Any], parse: Deserializer, context: InProcessContext
    ) -> Iterator[Any]:
        for request in requests:
            try:
                yield _transcode(request, self._serialize, parse)
            except InProcessRpcError as err:
                context.send_error = err
                raise

    def _answer(self, response: Any, handler: grpc.RpcMethodHandler) -> Any:
        return _transcode(response, handler.response_serializer, self._deserialize)


class _Unary(_Method, grpc.UnaryUnaryMultiCallable, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    def __call__(  # type: ignore[override]
        self, request: Any, timeout: float | None = None, metadata: Any = None, **_: Any
    ) -> Any:
        behavior, arg, context, handler = self._start(request, metadata, timeout, False)
        try:
            response = contextvars.Context().run(behavior, arg, context)
        except Exception as exc:
            error = context.error(exc)
            raise error if error is not None else exc from None
        finally:
            context.end()
        error = context.error(None)
        if error is not None:
            raise error
        return self._answer(response, handler)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("in-process channels answer plain calls only")

    def future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("in-process channels answer plain calls only")


class _Streaming(_Method, grpc.UnaryStreamMultiCallable, grpc.StreamStreamMultiCallable):  # type: ignore[misc]
    def __call__(  # type: ignore[override]
        self, request: Any, timeout: float | None = None, metadata: Any = None, **_: Any
    ) -> _ResponseStream:
        behavior, arg, context, handler = self._start(request, metadata, timeout, True)
        return _ResponseStream(self, behavior, arg, context, handler)


class _ResponseStream(grpc.Call):  # type: ignore[misc]
    """The responses of a streaming call, produced by the servicer as the caller reads them
    (each step in the call's own context, as on a server worker thread)."""

    def __init__(
        self,
        method: _Streaming,
        behavior: Callable[..., Iterator[Any]],
        arg: Any,
        context: InProcessContext,
        handler: grpc.RpcMethodHandler,
    ) -> None:
        self._method = method
        self._context = context
        self._handler = handler
        self._vars = contextvars.Context()
        self._responses: Iterator[Any] | None = None
        self._start = lambda: iter(behavior(arg, context))

    def __iter__(self) -> _ResponseStream:
        return self

    def __next__(self) -> Any:
        context = self._context
        if context._ended and self._responses is None:
            raise StopIteration
        try:
            if self._responses is None:
                self._responses = self._vars.run(self._start)
            response = self._vars.run(next, self._responses)
        except StopIteration:
            context.end()
            error = context.error(None)
            if error is not None:
                raise error from None
            raise
        except Exception as exc:
            context.end()
            error = context.error(exc)
            raise error if error is not None else exc from None
        if context.past_deadline():
            self.cancel()
            raise InProcessRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        return self._method._answer(response, self._handler)

    def cancel(self) -> bool:
        """Stops the servicer's generator (its cleanup runs now) and ends the call."""
        if self._responses is not None and hasattr(self._responses, "close"):
            self._vars.run(self._responses.close)
        self._context.end()
        return True

    def __del__(self) -> None:
        if not self._context._ended:
            with contextlib.suppress(Exception):  # abandoned: clean up if the process still can
                self.cancel()

    def is_active(self) -> bool:
        return self._context.is_active()

    def time_remaining(self) -> Any:
        return self._context.time_remaining()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return self._context.add_callback(callback)

    def code(self) -> grpc.StatusCode:
        return self._context.code() or grpc.StatusCode.OK

    def details(self) -> str:
        return self._context.details()

    def initial_metadata(self) -> Any:
        return ()

    def trailing_metadata(self) -> Any:
        return self._context.trailing_metadata()
