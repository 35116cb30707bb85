"""Identity assertions: what the gateway (or an mlgrid service) states about a caller, signed.

``<payload>.<signature>``, both base64url: the payload is JSON ``{"sub", "adm", "ws", "exp"}``
(and ``"grp"``, the identity provider's groups that matter, when there are any; ``"scp"``, the
experiment a project run's token is confined to, when it is one),
the signature HMAC-SHA256 over the encoded payload with the deployment's shared secret
(``MLGRID_AUTH_SECRET``). Short-lived (:data:`ASSERTION_SECONDS`), so a user removed or demoted
stops being asserted within that time even by a gateway that cached its credentials.
Verification is cached per assertion until it expires: the gateway re-sends the same assertion
for a caller's successive calls, so a service verifies each one once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

from mlgrid.exceptions import Unauthenticated

from .identity import Identity

#: Seconds an assertion is valid after it is signed.
ASSERTION_SECONDS = 60.0
#: Verified assertions remembered at most (cleared when full: each is cheap to re-verify).
_CACHE_LIMIT = 10_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AssertionSigner:
    """Signs and verifies assertions with one shared secret."""

    def __init__(self, secret: str, lifetime: float = ASSERTION_SECONDS) -> None:
        if not secret:
            raise ValueError("an assertion secret must not be empty")
        self._key = secret.encode()
        self.lifetime = lifetime
        self._verified: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def sign(self, identity: Identity, now: float | None = None) -> str:
        expires = (now if now is not None else time.time()) + self.lifetime
        claims: dict[str, object] = {
            "sub": identity.subject,
            "adm": identity.is_admin,
            "ws": list(identity.workspaces),
            "exp": expires,
        }
        if identity.groups:
            claims["grp"] = list(identity.groups)
        if identity.scope:  # a project run's token: confined to its experiment (run_tokens.py)
            claims["scp"] = identity.scope
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def verify(self, assertion: str) -> Identity:
        """The identity ``assertion`` states; Unauthenticated when forged, altered or expired."""
        now = time.time()
        cached = self._verified.get(assertion)
        if cached is not None and cached[1] > now:
            return cached[0]
        payload, dot, signature = assertion.partition(".")
        if not dot or not hmac.compare_digest(signature, self._mac(payload)):
            raise Unauthenticated("the identity assertion is not signed by this deployment")
        try:
            claims = json.loads(_unb64(payload))
            subject, admin, spaces, expires = (
                claims["sub"],
                claims["adm"],
                claims["ws"],
                claims["exp"],
            )
            groups = tuple(map(str, claims.get("grp", ())))
            scope = str(claims.get("scp", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Unauthenticated("the identity assertion is malformed") from None
        if not isinstance(expires, (int, float)) or expires <= now:
            raise Unauthenticated("the identity assertion has expired; authenticate again")
        identity = Identity(
            str(subject), bool(admin), tuple(map(str, spaces)), "assertion", groups, scope
        )
        with self._lock:
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[assertion] = (identity, float(expires))
        return identity
