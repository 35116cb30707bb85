"""The REST caller's credentials, carried to the gRPC calls its request makes.

The REST port answers each request with gRPC calls to the backends. Whoever checks identities
there (the gateway's authenticator, the services' interceptor) must see the credentials the
HTTP client presented, exactly as a gRPC client's: the request's ``Authorization`` header goes
out as the ``authorization`` metadata (``mlgrid.protocol.AUTHORIZATION_METADATA``) of every call
made while serving it. The header is remembered in a context variable for the length of one
request (each request is served on one thread), and one client interceptor on the backends'
channels adds it, so no handler passes credentials by hand and none can forget to.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc

from mlgrid.protocol import AUTHORIZATION_METADATA

_authorization: ContextVar[str | None] = ContextVar("rest_authorization", default=None)


@contextmanager
def calls_on_behalf_of(authorization: str | None) -> Iterator[None]:
    """While serving one request: its ``Authorization`` header (None: it sent none)."""
    token = _authorization.set(authorization or None)
    try:
        yield
    finally:
        _authorization.reset(token)


def caller_metadata() -> list[tuple[str, str]]:
    """The metadata that carries the current request's credentials (empty without any)."""
    value = _authorization.get()
    return [(AUTHORIZATION_METADATA, value)] if value else []


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class CallerCredentials(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the current REST request's credentials to each call (every call kind)."""

    @staticmethod
    def _details(details: Any) -> Any:
        extra = caller_metadata()
        if not extra:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != AUTHORIZATION_METADATA]
        return _CallDetails(
            details.method,
            details.timeout,
            [*metadata, *extra],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)
