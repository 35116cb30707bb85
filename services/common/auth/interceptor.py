"""The one server interceptor every mlgrid service installs when auth is on.

Per call: establish the caller (the gateway's signed assertion; on a tunnel or a service's own
port the raw credentials), then apply the method's :class:`~.policy.Rule` before the servicer
runs (so a refused call writes nothing), and afterwards record what it created or cut a listing
to what the caller may read. The servicer finds the caller in :func:`.identity.current_identity`.
Refusals are UNAUTHENTICATED (no or bad credentials) or PERMISSION_DENIED naming the resource
and the permission needed; the error-mapping interceptor outside this one turns them into
statuses.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

from mlgrid.exceptions import PermissionDenied
from mlgrid.protocol import WORKSPACE_METADATA

from .identity import Identity, reset_identity, set_identity
from .policy import Rule
from .run_tokens import check_scoped_call
from .runtime import AuthRuntime
from .store import DEFAULT_WORKSPACE


def _workspace(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == WORKSPACE_METADATA and isinstance(value, str) and value:
            return value
    return DEFAULT_WORKSPACE


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates and authorizes the calls of the services whose rules it holds."""

    def __init__(self, runtime: AuthRuntime, rules: Mapping[str, Rule], services: set[str]) -> None:
        self._runtime = runtime
        #: "/pkg.Service/Method" -> rule
        self._rules = dict(rules)
        #: Full names of the services checked: their methods without a rule are refused.
        self._services = services
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        method = details.method
        if handler is None:
            return None
        service = method.split("/")[1] if method.count("/") == 2 else ""
        rule = self._rules.get(method)
        if rule is None and service not in self._services:
            return handler  # health, reflection, BackendInfoService: open, as every server's
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method, rule)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    # -- the checks --------------------------------------------------------------------------

    def _identify(self, context: grpc.ServicerContext) -> Identity:
        return self._runtime.authenticator.identify(
            context.invocation_metadata() or (), trust_assertion=True
        )

    def _before(
        self, rule: Rule | None, method: str, identity: Identity, request: Any, context: Any
    ) -> None:
        access = self._runtime.access
        action = method.rsplit("/", 1)[-1]
        if rule is None:
            raise PermissionDenied(f"{action} has no permission rule; only an admin may call it")
        # is_admin also refuses a user removed since it authenticated.
        admin = access.is_admin(identity)
        check_scoped_call(identity, rule, action)  # a project run's token (run_tokens.py)
        if rule.anyone:
            return  # the auth service's own calls check the rest themselves
        if rule.creates is not None and rule.kind is not None:
            access.check_can_create(identity, _workspace(context), f"a {rule.kind.shown}")
        if admin:
            return
        if rule.admin:
            access.require_admin(identity, action)
        if (
            rule.needs is not None
            and rule.ids is not None
            and rule.kind is not None
            and request is not None
        ):
            needs = rule.needs_of(request) if rule.needs_of is not None else rule.needs
            for resource_id in rule.ids(request):
                access.require(identity, rule.kind, resource_id, needs, action)

    def _after(
        self, rule: Rule | None, identity: Identity, request: Any, response: Any, context: Any
    ) -> Any:
        if rule is None:
            return response
        access = self._runtime.access
        if rule.creates is not None and rule.kind is not None:
            access.record_created(
                identity, rule.kind, rule.creates(request, response), _workspace(context)
            )
        if rule.after is not None:
            rule.after(access, request)
            self._runtime.changed()
        if rule.learns is not None:
            rule.learns(request, response)
        if rule.filters is not None and rule.kind is not None:
            kind = rule.kind
            return rule.filters(response, lambda ids: access.readable(identity, kind, ids))
        return response

    # -- wrapping the four kinds of handler -----------------------------------------------------

    def _wrap(
        self, handler: grpc.RpcMethodHandler, method: str, rule: Rule | None
    ) -> grpc.RpcMethodHandler:
        identify, before, after = self._identify, self._before, self._after

        def unary_in(behavior: Callable[..., Any], streaming_in: bool) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                identity = identify(context)
                token = set_identity(identity)
                try:
                    if streaming_in:
                        first = next(request, None)
                        before(rule, method, identity, first, context)
                        request = itertools.chain(() if first is None else (first,), request)
                        response = behavior(request, context)
                        return after(rule, identity, first, response, context)
                    before(rule, method, identity, request, context)
                    return after(rule, identity, request, behavior(request, context), context)
                finally:
                    reset_identity(token)

            return wrapped

        def stream_out(
            behavior: Callable[..., Iterator[Any]], streaming_in: bool
        ) -> Callable[..., Iterator[Any]]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                identity = identify(context)
                token = set_identity(identity)
                try:
                    if streaming_in:
                        first = next(request, None)
                        before(rule, method, identity, first, context)
                        request = itertools.chain(() if first is None else (first,), request)
                    else:
                        before(rule, method, identity, request, context)
                finally:
                    reset_identity(token)
                yield from behavior(request, context)

            return wrapped

        args = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary_in(handler.unary_unary, False), *args)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(unary_in(handler.stream_unary, True), *args)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                stream_out(handler.unary_stream, False), *args
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                stream_out(handler.stream_stream, True), *args
            )
        return handler
