"""One place where domain errors become gRPC statuses.

Servicers and domain code raise :class:`mlgrid.exceptions.MlgridException` subclasses; the
interceptor below turns each into the matching gRPC status with a ``google.rpc.ErrorInfo`` whose
``reason`` is MLflow's error code. Anything else becomes INTERNAL (and is logged with its
traceback), so a bug never leaks as a hung or half-answered call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from mlgrid.exceptions import ERROR_DOMAIN, InternalError, InvalidParameterValue, MlgridException
from mlgrid.limits import MAX_ERROR_MESSAGE_CHARS

from . import call_scope

log = logging.getLogger(__name__)

#: Absolute file-system paths (two segments or more) in an unexpected error's text: they describe
#: the server, not the request, and are kept for its log.
_SERVER_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s'\"/:,;)]+/)+[^\s'\"/:,;)]*")


def bounded_message(message: str) -> str:
    """``message`` cut to :data:`MAX_ERROR_MESSAGE_CHARS`: gRPC sends it in a header, and a
    header over its limit is dropped, leaving the client with "Stream removed"."""
    if len(message) <= MAX_ERROR_MESSAGE_CHARS:
        return message
    return message[: MAX_ERROR_MESSAGE_CHARS - 40] + f"... ({len(message)} characters in all)"


def to_grpc_status(exc: MlgridException) -> grpc.Status:
    """The rich gRPC status for a domain error."""
    info = error_details_pb2.ErrorInfo(reason=exc.error_code, domain=ERROR_DOMAIN)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, exc.grpc_status.name),
        message=bounded_message(exc.message),
        details=[detail],
    )
    return rpc_status.to_status(status)


def abort_with(context: grpc.ServicerContext, exc: MlgridException) -> None:
    """Ends the call with ``exc``'s status (raises, like ``context.abort``)."""
    context.abort_with_status(to_grpc_status(exc))


def _as_domain_error(exc: BaseException, method: str) -> MlgridException:
    if isinstance(exc, MlgridException):
        return exc
    if isinstance(exc, RecursionError):
        # A request nested deeper than any limit caught (the limits should catch it first).
        return InvalidParameterValue(f"the request to {method} is nested too deeply to process")
    log.exception("unexpected error in %s", method, exc_info=exc)
    text = _SERVER_PATH.sub("<path>", str(exc))
    return InternalError(f"{type(exc).__name__} in {method}: {text}")


def _is_abort(exc: BaseException, context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after setting the code; let it through.
    code = context.code() if hasattr(context, "code") else None
    return code is not None and code != grpc.StatusCode.OK


def _request_taker(
    deserializer: Callable[[bytes], Any] | None, method: str, streamed: bool
) -> Callable[[Any], Any] | None:
    """What turns a call's request argument (bytes, or an iterator of them when ``streamed``)
    into what the handler takes, parsed with the handler's ``deserializer``; None for a handler
    of raw bytes (the gateway's forwarding), whose argument is passed on untouched. A message
    that does not parse is the client's error (INVALID_ARGUMENT), named by method and never
    echoed."""
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            raise InvalidParameterValue(
                f"the request to {method} is not a valid message of its type (protobuf wire "
                f"format, {len(data):,} bytes received)"
            ) from None

    if not streamed:
        return parse

    def parse_each(requests: Iterator[bytes]) -> Iterator[Any]:
        for data in requests:
            yield parse(data)

    return parse_each


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Maps exceptions raised by any handler to gRPC statuses with ErrorInfo, and runs every
    handler inside a :mod:`call_scope` (so its SQL is cancelled when the call ends)."""

    def __init__(self) -> None:
        #: method -> (the handler found, its guarded copy). The servers look up the same
        #: handler object for a method every time; wrapping it once per method instead of per
        #: call saves the closures and handler tuple on every call.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = self._guard(handler, method)
        self._guarded[method] = (handler, guarded)
        return guarded

    @staticmethod
    def _guard(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        # The guarded handler takes the request's bytes and parses them itself: grpcio answers
        # a message that does not parse with INTERNAL ("Exception deserializing request!"),
        # which tells the client the server failed (and invites a retry), and for a streamed
        # message it also leaks the call (services/common/server.py, STOP_SETTLE_SECONDS).
        def guard_unary(behavior: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
            take = _request_taker(handler.request_deserializer, method, streamed)

            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    with call_scope.serving(context):
                        return behavior(request if take is None else take(request), context)
                except Exception as exc:
                    if _is_abort(exc, context):
                        raise
                    abort_with(context, _as_domain_error(exc, method))

            return wrapped

        def guard_stream(
            behavior: Callable[..., Iterator[Any]], streamed: bool
        ) -> Callable[..., Iterator[Any]]:
            take = _request_taker(handler.request_deserializer, method, streamed)

            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    with call_scope.serving(context):
                        yield from behavior(request if take is None else take(request), context)
                except Exception as exc:
                    if _is_abort(exc, context):
                        raise
                    abort_with(context, _as_domain_error(exc, method))

            return wrapped

        wrap_args = (None, handler.response_serializer)  # the request's bytes, parsed above
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                guard_unary(handler.unary_unary, False), *wrap_args
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                guard_unary(handler.stream_unary, True), *wrap_args
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                guard_stream(handler.unary_stream, False), *wrap_args
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                guard_stream(handler.stream_stream, True), *wrap_args
            )
        return handler
