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

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mlgrid_services.common.auth.outgoing import AuthorizationInterceptor

_authorization: ContextVar[str | None] = ContextVar("rest_authorization", default=None)


@contextmanager
def calls_on_behalf_of(authorization: str | None) -> Iterator[None]:
    """While serving one request: its ``Authorization`` header (None: it sent none)."""
    token = _authorization.set(authorization or None)
    try:
        yield
    finally:
        _authorization.reset(token)


def caller_credentials() -> AuthorizationInterceptor:
    """The interceptor that adds the current request's credentials to each backend call."""
    return AuthorizationInterceptor(_authorization.get)
