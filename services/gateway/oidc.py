"""Tokens from an organisation's identity provider: OIDC ID/access tokens (JWTs) checked
against one configured issuer.

The gateway's authenticator hands a bearer token that looks like a JWT to
:meth:`OidcVerifier.verify`; a token passes only when

- its header names an allowed asymmetric algorithm (RS256, ES256: never ``none`` and never an
  HMAC algorithm, whose "secret" an attacker could take from the public keys),
- it is signed by a key of the issuer's JWKS, matched by ``kid`` (keys come from a JWKS URL,
  cached and fetched again when a token names a key id not seen yet, at most once per
  :data:`MIN_REFRESH_INTERVAL_S`; or from a JWKS file, read again on the same terms),
- ``iss`` is the configured issuer and ``aud`` contains the configured audience,
- ``exp`` is in the future and ``nbf``/``iat`` are not (each within ``leeway`` seconds).

Every refusal is :class:`mlgrid.exceptions.Unauthenticated` with a message that says which check
failed and never echoes the token back; a JWKS that cannot be fetched is
``TemporarilyUnavailable`` (the caller's token is not at fault). PyJWT checks the signature;
the time and audience checks are made here, against an injectable clock.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable, Unauthenticated
from mlgrid.uris import is_loopback_host

log = logging.getLogger(__name__)

#: Signature algorithms accepted. Asymmetric only: the verifier holds public keys, so an HMAC
#: algorithm would let anyone who has read the JWKS forge tokens.
ALGORITHMS = ("RS256", "ES256")
#: The key type and (for EC) curve each algorithm must be used with.
_KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}
#: Seconds between two fetches of the JWKS caused by unknown key ids (a flood of tokens naming
#: made-up key ids must not become a flood of requests to the identity provider).
MIN_REFRESH_INTERVAL_S = 30.0
#: Seconds after which the cached JWKS is fetched again anyway (keys that were rotated out stop
#: verifying within this time).
MAX_KEYS_AGE_S = 3600.0
#: Bounds on what is fetched and on the tokens looked at.
MAX_JWKS_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 16 * 1024
JWKS_TIMEOUT_S = 5.0

_SEGMENT = r"[A-Za-z0-9_-]+"
_JWT_SHAPE = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}\.[A-Za-z0-9_-]*$")


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's shape (three base64url segments): such tokens go to the
    OIDC verifier, others are mlgrid's own access tokens."""
    return len(token) <= MAX_TOKEN_CHARS and bool(_JWT_SHAPE.match(token))


@dataclass(frozen=True)
class OidcClaims:
    """What a verified token says about its holder."""

    #: ``sub``: the issuer's stable id of the user.
    subject: str
    #: ``email``, when the token carries one.
    email: str | None
    #: The groups claim (configurable name), empty when absent.
    groups: tuple[str, ...]
    #: ``iss``, equal to the configured issuer.
    issuer: str
    #: ``exp``, seconds since the epoch.
    expires_at: float
    #: The claim configured as the user name (``sub`` by default).
    username: str


class OidcVerifier:
    """Verifies JWTs of one issuer for one audience with keys from a JWKS URL or file."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        jwks_file: str | Path | None = None,
        leeway: float = 60.0,
        clock: Callable[[], float] = time.time,
        username_claim: str = "sub",
        groups_claim: str = "groups",
    ) -> None:
        if not issuer:
            raise InvalidParameterValue("OIDC issuer must be set (MLGRID_AUTH_OIDC_ISSUER)")
        if not audience:
            raise InvalidParameterValue(
                "OIDC audience must be set (MLGRID_AUTH_OIDC_AUDIENCE): the client id the "
                "identity provider puts in the tokens' 'aud' claim"
            )
        if (jwks_url is None) == (jwks_file is None):
            raise InvalidParameterValue(
                "OIDC keys: set exactly one of the JWKS URL (MLGRID_AUTH_OIDC_JWKS_URL) and the "
                "JWKS file (MLGRID_AUTH_OIDC_JWKS_FILE)"
            )
        if jwks_url is not None:
            _check_jwks_url(jwks_url)
        if leeway < 0:
            raise InvalidParameterValue(f"OIDC leeway must be >= 0 seconds, got {leeway}")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.jwks_file = Path(jwks_file) if jwks_file is not None else None
        self.leeway = leeway
        self.username_claim = username_claim
        self.groups_claim = groups_claim
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        #: Times (of ``clock``) of the last successful load and of the last attempt.
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        #: How many times the JWKS was loaded (tests and diagnostics).
        self.fetches = 0

    @classmethod
    def from_env(cls) -> OidcVerifier | None:
        """The verifier the ``MLGRID_AUTH_OIDC_*`` settings describe; None when no issuer is set."""
        issuer = env.MLGRID_AUTH_OIDC_ISSUER.get()
        if not issuer:
            return None
        return cls(
            issuer,
            env.MLGRID_AUTH_OIDC_AUDIENCE.get() or "",
            jwks_url=env.MLGRID_AUTH_OIDC_JWKS_URL.get(),
            jwks_file=env.MLGRID_AUTH_OIDC_JWKS_FILE.get(),
            leeway=env.MLGRID_AUTH_OIDC_LEEWAY.get(),
            username_claim=env.MLGRID_AUTH_OIDC_USERNAME_CLAIM.get(),
            groups_claim=env.MLGRID_AUTH_OIDC_GROUPS_CLAIM.get(),
        )

    # -- verification ------------------------------------------------------------------------

    def verify(self, token: str) -> OidcClaims:
        """The claims of ``token``; Unauthenticated naming the failed check otherwise."""
        import jwt

        if not looks_like_jwt(token):
            raise Unauthenticated("bearer token is not a JWT (three base64url segments)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("bearer token's JWT header is not valid base64url JSON") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            shown = alg if isinstance(alg, str) and len(alg) <= 20 else "?"
            raise Unauthenticated(
                f"JWT algorithm {shown!r} is not accepted; allowed: {', '.join(ALGORITHMS)}"
            )
        key = self._key_for(header.get("kid"), alg)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                # Time, issuer and audience are checked below, against this verifier's clock.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise Unauthenticated("JWT signature does not verify with the issuer's key") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"JWT is malformed: {_short(str(exc))}") from None
        return self._check_claims(claims)

    def _check_claims(self, claims: Mapping[str, Any]) -> OidcClaims:
        issuer = claims.get("iss")
        if issuer != self.issuer:
            raise Unauthenticated(
                f"JWT issuer {_short(str(issuer))!r} is not the configured issuer {self.issuer!r}"
            )
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise Unauthenticated(
                f"JWT audience does not include {self.audience!r} (this deployment's client id)"
            )
        now = self._clock()
        expires_at = _number(claims, "exp", required=True)
        assert expires_at is not None
        if now > expires_at + self.leeway:
            raise Unauthenticated(
                f"JWT expired {int(now - expires_at)} s ago; get a new token from the identity "
                "provider"
            )
        not_before = _number(claims, "nbf")
        if not_before is not None and now + self.leeway < not_before:
            raise Unauthenticated(f"JWT is not valid yet (nbf is {int(not_before - now)} s ahead)")
        issued_at = _number(claims, "iat")
        if issued_at is not None and now + self.leeway < issued_at:
            raise Unauthenticated(
                f"JWT is issued in the future (iat is {int(issued_at - now)} s ahead)"
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("JWT has no subject ('sub' claim)")
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username:
            raise Unauthenticated(
                f"JWT has no string {self.username_claim!r} claim, which names the user here "
                "(MLGRID_AUTH_OIDC_USERNAME_CLAIM)"
            )
        email = claims.get("email")
        return OidcClaims(
            subject=subject,
            email=email if isinstance(email, str) else None,
            groups=self._groups(claims.get(self.groups_claim)),
            issuer=self.issuer,
            expires_at=float(expires_at),
            username=username,
        )

    def _groups(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise Unauthenticated(
            f"JWT claim {self.groups_claim!r} must be a string or a list of strings "
            "(MLGRID_AUTH_OIDC_GROUPS_CLAIM names it)"
        )

    # -- keys --------------------------------------------------------------------------------

    def _key_for(self, kid: Any, alg: str) -> SigningKey:
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise Unauthenticated("JWT header 'kid' must be a string of at most 256 characters")
        keys = self._current_keys(kid)
        if kid is None:
            fitting = [k for k in keys.values() if k.fits(alg)]
            if len(fitting) != 1:
                raise Unauthenticated(
                    "JWT header has no 'kid' and the issuer's JWKS does not have exactly one "
                    f"{alg} key"
                )
            return fitting[0]
        key = keys.get(kid)
        if key is None:
            raise Unauthenticated(f"JWT key id {_short(kid)!r} is not in the issuer's JWKS")
        if not key.fits(alg):
            raise Unauthenticated(f"JWT key id {_short(kid)!r} is not a key for {alg}")
        return key

    def _current_keys(self, kid: str | None) -> dict[str, SigningKey]:
        """The cached keys, loaded again when they are older than :data:`MAX_KEYS_AGE_S` or
        ``kid`` is unknown (at most once per :data:`MIN_REFRESH_INTERVAL_S`, counting failed
        attempts too). Keys already held keep working while the source cannot be read."""
        with self._lock:
            now = self._clock()
            never = self._attempted_at is None
            stale = never or self._loaded_at is None or now - self._loaded_at > MAX_KEYS_AGE_S
            unknown = kid is not None and kid not in self._keys
            throttled = not never and now - (self._attempted_at or 0.0) < MIN_REFRESH_INTERVAL_S
            if (stale or unknown) and not throttled:
                self._attempted_at = now
                try:
                    self._keys = self._load_keys()
                    self._loaded_at = now
                except TemporarilyUnavailable as exc:
                    if not self._keys:
                        raise
                    log.warning("%s; verifying with the keys fetched before", exc.message)
            elif not self._keys and self._loaded_at is None:
                raise TemporarilyUnavailable(
                    f"the identity provider's keys ({self.jwks_url or self.jwks_file}) could "
                    f"not be loaded; trying again within {MIN_REFRESH_INTERVAL_S:.0f} s"
                )
            return self._keys

    def _load_keys(self) -> dict[str, SigningKey]:
        self.fetches += 1
        source = self.jwks_url or str(self.jwks_file)
        data = self._fetch() if self.jwks_url else self._read_file()
        return parse_jwks(data, source)

    def _fetch(self) -> bytes:
        assert self.jwks_url is not None
        request = urllib.request.Request(self.jwks_url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=JWKS_TIMEOUT_S) as answer:
                data: bytes = answer.read(MAX_JWKS_BYTES + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise TemporarilyUnavailable(
                f"cannot fetch the identity provider's keys from {self.jwks_url}: {exc}"
            ) from None
        if len(data) > MAX_JWKS_BYTES:
            raise TemporarilyUnavailable(
                f"the JWKS at {self.jwks_url} is larger than {MAX_JWKS_BYTES} bytes"
            )
        return data

    def _read_file(self) -> bytes:
        assert self.jwks_file is not None
        try:
            with self.jwks_file.open("rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as exc:
            raise TemporarilyUnavailable(
                f"cannot read the JWKS file {self.jwks_file}: {exc}"
            ) from None
        if len(data) > MAX_JWKS_BYTES:
            raise TemporarilyUnavailable(
                f"the JWKS file {self.jwks_file} is larger than {MAX_JWKS_BYTES} bytes"
            )
        return data


@dataclass(frozen=True)
class SigningKey:
    """One key of the issuer's JWKS: its JWK members and the public key PyJWT verifies with."""

    jwk: Mapping[str, Any]
    key: Any

    def fits(self, alg: str) -> bool:
        """Whether this key may verify signatures made with ``alg``."""
        kty, crv = _KEY_TYPES[alg]
        if self.jwk.get("kty") != kty or (crv is not None and self.jwk.get("crv") != crv):
            return False
        return self.jwk.get("alg") in (None, alg)


def parse_jwks(data: bytes, source: str) -> dict[str, SigningKey]:
    """The signing keys of a JWKS document by key id; keys of other uses and types are skipped.
    A document that is not a JWKS is an error naming ``source``."""
    import jwt

    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TemporarilyUnavailable(f"the JWKS from {source} is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise TemporarilyUnavailable(f"the JWKS from {source} has no 'keys' list")
    keys: dict[str, SigningKey] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            key = jwt.PyJWK(entry).key
        except jwt.PyJWTError as exc:
            log.warning("JWKS from %s: key %d skipped: %s", source, index, exc)
            continue
        keys[str(entry.get("kid", f"#{index}"))] = SigningKey(dict(entry), key)
    return keys


def _number(claims: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise Unauthenticated(f"JWT has no '{name}' claim")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unauthenticated(f"JWT claim '{name}' must be a number of seconds since the epoch")
    return float(value)


def _check_jwks_url(url: str) -> None:
    """HTTPS, or HTTP to a loopback address only: keys fetched in the clear could be replaced
    on the way, and then any token would verify."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return
    raise InvalidParameterValue(
        f"OIDC JWKS URL {url[:200]!r} must be an https:// URL (http:// only to a loopback address)"
    )


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
