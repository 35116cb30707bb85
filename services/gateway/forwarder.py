"""Forwards calls of the mlgrid services to their backends as raw bytes.

One generic handler takes every method of the forwarded services. It reads the routing key
(field 1 of the first request, or the ``mlgrid-store-uri`` metadata), picks the backend from the
routing table and replays the call there with the caller's metadata and remaining deadline. The
backend's answer (messages, status, details, trailing metadata with its ErrorInfo) comes back
unchanged. A backend that cannot be reached gives UNAVAILABLE naming it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from mlgrid._rpc_errors import from_backend
from mlgrid.exceptions import InvalidParameterValue, MlgridException, TemporarilyUnavailable
from mlgrid.protocol import RESERVED_METADATA_PREFIXES, STORE_URI_METADATA
from mlgrid_services.common.errors import abort_with

from .channels import ChannelPool
from .discovery import Discovery
from .edge_auth import EdgeAuth
from .methods import ForwardedService, MethodKind, RouteBy, method_index
from .routing import Route, RoutingTable
from .wire import WireFormatError, read_string_field

#: Metadata the gateway does not pass on: per-hop transport headers and gRPC-reserved keys.
_HOP_BY_HOP = frozenset({"user-agent", "te", "content-type", "host", "connection", "keep-alive"})
#: Remaining times above this mean "no deadline" (gRPC reports an effectively infinite one).
_NO_DEADLINE_S = 1e7


def forwardable_metadata(metadata: Any) -> list[tuple[str, Any]]:
    """The caller's metadata minus hop-by-hop, reserved and internal keys."""
    return [
        (key, value)
        for key, value in metadata or ()
        if key not in _HOP_BY_HOP and not key.startswith(RESERVED_METADATA_PREFIXES)
    ]


def remaining_timeout(context: grpc.ServicerContext) -> float | None:
    """The caller's remaining deadline in seconds, None when it set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_S:
        return None
    return max(remaining, 0.0)


class Forwarder(grpc.GenericRpcHandler):
    """The generic handler that forwards every method of the given services."""

    def __init__(
        self,
        table: RoutingTable,
        pool: ChannelPool,
        discovery: Discovery | None = None,
        auth: EdgeAuth | None = None,
    ) -> None:
        self._auth = auth
        self._table = table
        self._pool = pool
        self._discovery = discovery
        self._index = method_index(table.services.values())
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            found = self._index.get(method)
            if found is None:
                return None  # not ours: UNIMPLEMENTED
            handler = self._handlers.setdefault(method, self._make_handler(*found))
        return handler

    # -- routing -----------------------------------------------------------------------------

    def _route(
        self, forwarded: ForwardedService, request: bytes | None, context: grpc.ServicerContext
    ) -> Route:
        """The route of one call; ends the call with a clear error when there is none."""
        try:
            return self._lookup(forwarded, request, context)
        except MlgridException as exc:
            abort_with(context, exc)
            raise  # unreachable: abort_with raises

    def _lookup(
        self, forwarded: ForwardedService, request: bytes | None, context: grpc.ServicerContext
    ) -> Route:
        store_uri = None
        field_value = None
        if forwarded.route_by is RouteBy.STORE_METADATA:
            for key, value in context.invocation_metadata() or ():
                if key == STORE_URI_METADATA and isinstance(value, str):
                    store_uri = value
        elif request:
            try:
                field_value = read_string_field(request, 1)
            except WireFormatError as exc:
                raise InvalidParameterValue(
                    f"request to {forwarded.full_name} is not a valid protobuf message: {exc}"
                ) from None
        key = self._table.routing_key(forwarded, field_value, store_uri)
        route = self._table.lookup(forwarded.key, key)
        if route is None and self._discovery is not None and self._discovery.retry_pending():
            route = self._table.lookup(forwarded.key, key)
        if route is None:
            shown = store_uri if store_uri is not None else (field_value or "")
            raise self._table.no_route_error(forwarded, key, shown)
        return route

    def _outgoing(self, context: grpc.ServicerContext) -> list[tuple[str, Any]]:
        """What the backend gets: the caller's metadata minus reserved keys; with auth on,
        minus the credentials plus the signed identity (ends the call when unauthenticated)."""
        metadata = context.invocation_metadata()
        forwardable = forwardable_metadata(metadata)
        if self._auth is None:
            return forwardable
        try:
            return self._auth.outgoing(forwardable, metadata)
        except MlgridException as exc:
            abort_with(context, exc)
            raise  # unreachable: abort_with raises

    # -- relaying answers --------------------------------------------------------------------

    @staticmethod
    def _relay_error(err: grpc.RpcError, route: Route, context: grpc.ServicerContext) -> None:
        """Ends the call with the backend's status, details and trailing metadata (raises)."""
        call: Any = err
        code = call.code()
        trailing = tuple(call.trailing_metadata() or ())
        if code is grpc.StatusCode.UNAVAILABLE and not from_backend(trailing):
            # The channel could not reach the backend (the backend's own UNAVAILABLE errors
            # carry an ErrorInfo): say which backend is down.
            abort_with(
                context,
                TemporarilyUnavailable(f"{route.describe()} is unavailable: {call.details()}"),
            )
        if trailing:
            context.set_trailing_metadata(trailing)
        context.abort(code, call.details() or "")

    @staticmethod
    def _pass_trailing(call: Any, context: grpc.ServicerContext) -> None:
        trailing = call.trailing_metadata()
        if trailing:
            context.set_trailing_metadata(tuple(trailing))

    # -- the four method kinds ---------------------------------------------------------------

    def _make_handler(self, forwarded: ForwardedService, kind: MethodKind) -> grpc.RpcMethodHandler:
        pool = self._pool
        outgoing = self._outgoing
        route_of = self._route
        relay_error = self._relay_error
        pass_trailing = self._pass_trailing

        def first_and_rest(requests: Iterator[bytes]) -> tuple[bytes | None, Iterator[bytes]]:
            first = next(requests, None)
            if first is None:
                return None, iter(())
            return first, itertools.chain((first,), requests)

        def unary_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = outgoing(context)
            route = route_of(forwarded, request, context)
            forward = pool.multicallable(route.address, kind)
            try:
                response, call = forward.with_call(
                    request, timeout=remaining_timeout(context), metadata=metadata
                )
            except grpc.RpcError as err:
                relay_error(err, route, context)
                raise  # unreachable: relay_error raises
            pass_trailing(call, context)
            return response  # type: ignore[no-any-return]

        def stream_unary(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            metadata = outgoing(context)
            first, all_requests = first_and_rest(requests)
            route = route_of(forwarded, first, context)
            future = pool.multicallable(route.address, kind).future(
                all_requests, timeout=remaining_timeout(context), metadata=metadata
            )
            context.add_callback(future.cancel)
            try:
                response = future.result()
            except grpc.RpcError as err:
                relay_error(err, route, context)
                raise
            pass_trailing(future, context)
            return response  # type: ignore[no-any-return]

        def streaming_response(
            route: Route, requests: Any, context: grpc.ServicerContext, metadata: Any
        ) -> Iterator[bytes]:
            call = pool.multicallable(route.address, kind)(
                requests, timeout=remaining_timeout(context), metadata=metadata
            )
            # The caller hanging up (or its deadline) cancels the backend call too.
            context.add_callback(call.cancel)
            try:
                yield from call
            except grpc.RpcError as err:
                relay_error(err, route, context)
                raise
            pass_trailing(call, context)

        def unary_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            metadata = outgoing(context)
            route = route_of(forwarded, request, context)
            yield from streaming_response(route, request, context, metadata)

        def stream_stream(
            requests: Iterator[bytes], context: grpc.ServicerContext
        ) -> Iterator[bytes]:
            metadata = outgoing(context)
            first, all_requests = first_and_rest(requests)
            route = route_of(forwarded, first, context)
            yield from streaming_response(route, all_requests, context, metadata)

        behaviours: dict[tuple[bool, bool], tuple[Callable[..., Any], Callable[..., Any]]] = {
            (False, False): (grpc.unary_unary_rpc_method_handler, unary_unary),
            (True, False): (grpc.stream_unary_rpc_method_handler, stream_unary),
            (False, True): (grpc.unary_stream_rpc_method_handler, unary_stream),
            (True, True): (grpc.stream_stream_rpc_method_handler, stream_stream),
        }
        make, behaviour = behaviours[(kind.client_streaming, kind.server_streaming)]
        handler: grpc.RpcMethodHandler = make(behaviour)  # no serializers: raw bytes both ways
        return handler
