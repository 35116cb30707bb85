"""Authentication at the gateway (docs/auth.md).

On the gateway port each call's credentials (``authorization``) are verified against the auth
store (or the identity provider), and the call is forwarded with a short-lived identity
assertion the services check instead of the credentials; the credentials themselves go no
further. Unauthenticated calls end here with UNAUTHENTICATED.

On the tunnel port the gateway cannot add metadata to the bytes it relays, so it checks the
credentials of the ``CONNECT`` request (refusing 401 without valid ones) and the services check
each tunnelled call's own credentials themselves (the shared interceptor accepts either).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Any

from mlgrid.protocol import AUTHORIZATION_METADATA, IDENTITY_METADATA
from mlgrid_services.common.auth.identity import Identity

if TYPE_CHECKING:
    from mlgrid_services.common.auth.runtime import AuthRuntime


class EdgeAuth:
    """Credentials in, signed identity out."""

    def __init__(self, runtime: AuthRuntime) -> None:
        self._runtime = runtime
        #: identity -> (assertion, when to sign a fresh one): a caller's calls share one
        #: assertion for half its lifetime, so the services verify it once.
        self._signed: dict[Identity, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def identify(self, metadata: Any) -> Identity:
        """The caller; raises Unauthenticated (the user gone, bad or missing credentials)."""
        identity = self._runtime.authenticator.identify(metadata or (), trust_assertion=False)
        if identity.is_service:
            return identity
        view = self._runtime.access.view(identity)
        return dataclasses.replace(
            identity, is_admin=view.user.is_admin, workspaces=tuple(sorted(view.memberships))
        )

    def assertion(self, identity: Identity) -> str:
        now = time.monotonic()
        cached = self._signed.get(identity)
        if cached is not None and now < cached[1]:
            return cached[0]
        signer = self._runtime.signer
        signed = signer.sign(identity)
        with self._lock:
            if len(self._signed) >= 10_000:
                self._signed.clear()
            self._signed[identity] = (signed, now + signer.lifetime / 2)
        return signed

    def outgoing(self, forwardable: list[tuple[str, Any]], metadata: Any) -> list[tuple[str, Any]]:
        """``forwardable`` (the caller's metadata minus reserved keys) without the credentials,
        plus the assertion for the caller of ``metadata``."""
        identity = self.identify(metadata)
        kept = [(k, v) for k, v in forwardable if k != AUTHORIZATION_METADATA]
        kept.append((IDENTITY_METADATA, self.assertion(identity)))
        return kept

    def check_connect(self, headers: dict[str, str]) -> Identity:
        """The caller of a tunnel's CONNECT (its ``authorization`` header)."""
        value = headers.get(AUTHORIZATION_METADATA) or headers.get("proxy-authorization")
        return self.identify([(AUTHORIZATION_METADATA, value)] if value else [])
