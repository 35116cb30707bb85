"""Credentials on the calls one mlgrid service makes to another (registry -> tracking, projects
-> tracking) through the gateway: ``Bearer mlgs.<assertion>`` for ``service:<name>``, signed
with the deployment's secret and re-signed before it expires. With auth off, channels are
returned unchanged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc

from mlgrid.protocol import AUTHORIZATION_METADATA

from .assertion import AssertionSigner
from .authenticator import service_credentials
from .settings import AuthSettings


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class AuthorizationInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Puts ``supply()``'s credentials (the ``authorization`` metadata, or nothing) on every
    call, in place of any the call carried; every call kind."""

    def __init__(self, supply: Callable[[], str | None]) -> None:
        self._supply = supply

    def _details(self, details: Any) -> Any:
        value = self._supply()
        if not value:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != AUTHORIZATION_METADATA]
        metadata.append((AUTHORIZATION_METADATA, value))
        return _Details(
            details.method,
            details.timeout,
            metadata,
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


class _ServiceCredentials:
    """``service:<name>``'s signed credentials, signed again halfway through their lifetime."""

    def __init__(self, signer: AssertionSigner, service: str) -> None:
        self._signer = signer
        self._service = service
        self._value = ""
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        now = time.monotonic()
        with self._lock:
            if now >= self._renew_at:
                self._value = service_credentials(self._signer, self._service)
                self._renew_at = now + self._signer.lifetime / 2
            return self._value


def as_service(channel: grpc.Channel, settings: AuthSettings, service: str) -> grpc.Channel:
    """``channel`` with ``service``'s credentials on every call when auth is on."""
    if not settings.enabled:
        return channel
    credentials = _ServiceCredentials(AssertionSigner(settings.secret), service)
    return grpc.intercept_channel(channel, AuthorizationInterceptor(credentials))
