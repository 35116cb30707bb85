"""Credentials to identities: what the gateway does at the edge, and what a service does for
calls that did not come through the gateway's port (tunnels, its own port).

Accepted, in the ``authorization`` metadata (HTTP header on the tunnel's CONNECT and the REST
port):

- ``Basic <base64 user:password>``: a store user; the password is checked with scrypt once, then
  remembered as (user, stored hash) so later calls cost one indexed read every few seconds
  instead of the KDF, and a changed password or removed user is noticed on that read.
- ``Bearer mlg_…``: an access token, looked up by its SHA-256 (not expired, not revoked).
- ``Bearer <JWT>``: an OIDC token, when a verifier for the identity provider is configured.
- ``Bearer mlgs.<assertion>``: mlgrid's own services calling one another (signed with the
  shared secret, like the gateway's identity assertions).

Successful results are cached for ``cache_seconds`` (concurrent calls with the same credentials
share one verification, ttl_cache.py); failures never are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from mlgrid.exceptions import Unauthenticated
from mlgrid.protocol import AUTHORIZATION_METADATA, IDENTITY_METADATA

from .assertion import AssertionSigner
from .identity import SERVICE_SUBJECT_PREFIX, Identity
from .passwords import TOKEN_PREFIX, verify_password
from .ttl_cache import TtlCache

if TYPE_CHECKING:
    # Only its type here: outgoing.py takes service_credentials from this module in every
    # service, auth on or off, and the store would bring SQLAlchemy's auth schema with it.
    from .store import AuthStore

#: Bearer prefix of the credentials mlgrid's services present to one another.
SERVICE_TOKEN_PREFIX = "mlgs."
_CACHE_LIMIT = 10_000


class JwtVerifier(Protocol):
    """What an OIDC verifier offers (services/gateway/oidc.py's ``OidcVerifier``)."""

    def verify(self, token: str) -> Any:
        """Claims with ``subject``, ``email``, ``groups``, ``issuer``; raises when invalid."""


def service_credentials(signer: AssertionSigner, service: str) -> str:
    """The ``authorization`` value a service sends when it calls another one."""
    identity = Identity(SERVICE_SUBJECT_PREFIX + service, is_admin=True, method="service")
    return f"Bearer {SERVICE_TOKEN_PREFIX}{signer.sign(identity)}"


def _unauthenticated() -> Unauthenticated:
    return Unauthenticated(
        "authentication required: send 'authorization: Basic <user:password>' or "
        "'Bearer <token>' (MLGRID_TRACKING_USERNAME/PASSWORD or MLGRID_TRACKING_TOKEN)"
    )


class Authenticator:
    """Verifies credentials against the auth store (and an identity provider, if configured)."""

    def __init__(
        self,
        store: AuthStore,
        signer: AssertionSigner,
        *,
        cache_seconds: float = 2.0,
        jwt_verifier: JwtVerifier | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self.jwt_verifier = jwt_verifier
        #: sha256(header) -> (identity, stored password hash or "")
        self._cache: TtlCache[str, tuple[Identity, str]] = TtlCache(cache_seconds, _CACHE_LIMIT)
        #: The groups some role is given to (one entry).
        self._linked: TtlCache[str, frozenset[str]] = TtlCache(cache_seconds, 1)

    def invalidate(self) -> None:
        self._cache.clear()
        self._linked.clear()

    def _linked_groups(self) -> frozenset[str]:
        """Groups some role is given to, re-read every ``cache_seconds``: of a token's groups
        only these are kept, so a caller's identity stays small however many groups it has."""
        return self._linked.get("", lambda _stale: self._store.linked_groups())

    def identify(self, metadata: Iterable[tuple[str, Any]], *, trust_assertion: bool) -> Identity:
        """The caller of a call with ``metadata``. ``trust_assertion``: a service accepts the
        identity assertion the gateway signed; the gateway itself never does."""
        authorization = None
        for key, value in metadata:
            if key == IDENTITY_METADATA and trust_assertion and isinstance(value, str):
                return self._signer.verify(value)
            if key == AUTHORIZATION_METADATA and isinstance(value, str):
                authorization = value
        if authorization is None:
            raise _unauthenticated()
        return self.authenticate(authorization)

    def authenticate(self, authorization: str) -> Identity:
        """The identity ``authorization`` (the header's value) proves; Unauthenticated if none."""
        scheme, _, credential = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if scheme == "bearer" and credential.startswith(SERVICE_TOKEN_PREFIX):
            identity = self._signer.verify(credential[len(SERVICE_TOKEN_PREFIX) :])
            if not identity.is_service:
                raise Unauthenticated("the service credential does not name an mlgrid service")
            return identity
        if scheme == "basic":

            def verify(stale: tuple[Identity, str] | None) -> tuple[Identity, str]:
                return self._basic(credential, stale)
        elif scheme == "bearer" and credential.startswith(TOKEN_PREFIX):

            def verify(stale: tuple[Identity, str] | None) -> tuple[Identity, str]:
                return self._token(credential), ""
        elif scheme == "bearer" and credential.count(".") == 2:

            def verify(stale: tuple[Identity, str] | None) -> tuple[Identity, str]:
                return self._jwt(credential), ""
        else:
            raise Unauthenticated(
                "the authorization metadata must be 'Basic <base64 user:password>' or "
                "'Bearer <token>'"
            )
        key = hashlib.sha256(authorization.encode()).hexdigest()
        return self._cache.get(key, verify)[0]

    def _basic(self, credential: str, cached: tuple[Identity, str] | None) -> tuple[Identity, str]:
        try:
            username, colon, password = (
                base64.b64decode(credential, validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated(
                "the Basic credentials are not base64 of 'user:password'"
            ) from None
        if not colon:
            raise Unauthenticated("the Basic credentials are not base64 of 'user:password'")
        found = self._store.password_record(username)
        if found is None:
            raise Unauthenticated("the user name or password is not valid")
        user, stored = found
        # The same stored hash as when this password was last verified: no need for the KDF.
        if not (cached is not None and cached[1] == stored) and not verify_password(
            password, stored
        ):
            raise Unauthenticated("the user name or password is not valid")
        return Identity(user.username, user.is_admin, (), "password"), stored

    def _token(self, token: str) -> Identity:
        found = self._store.token_holder(token)
        if found is None:
            raise Unauthenticated("the access token is not valid (unknown, revoked or expired)")
        user, scope = found
        return Identity(user.username, user.is_admin, (), "token", scope=scope)

    def _jwt(self, token: str) -> Identity:
        if self.jwt_verifier is None:
            raise Unauthenticated(
                "a JWT was presented but no identity provider is configured (docs/auth.md)"
            )
        try:
            claims = self.jwt_verifier.verify(token)
        except Unauthenticated:
            raise  # the verifier's message says which check failed
        subject = getattr(claims, "username", None) or getattr(claims, "subject", "")
        if not subject:
            raise Unauthenticated("the identity provider's token names no subject")
        found = self._store.password_record(subject)
        if found is None:
            self._store.ensure_external_user(subject)
        admin = bool(found and found[0].is_admin)
        claimed = getattr(claims, "groups", ()) or ()
        linked = self._linked_groups() if claimed else frozenset()
        groups = tuple(sorted({g for g in claimed if g in linked}))
        return Identity(str(subject), admin, (), "oidc", groups)
