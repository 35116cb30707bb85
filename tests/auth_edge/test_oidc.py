"""OidcVerifier: real JWTs signed with keys the test makes, the JWKS served over real HTTP on
loopback (or read from a file), every refusal an Unauthenticated naming the failed check."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable, Unauthenticated
from mlgrid_services.gateway.oidc import (
    MIN_REFRESH_INTERVAL_S,
    OidcClaims,
    OidcVerifier,
    looks_like_jwt,
)
from tests.auth_edge.keys import AUDIENCE, ISSUER, IdentityProvider, JwksServer, serve_jwks


class Clock:
    """Wall time the test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> IdentityProvider:
    idp = IdentityProvider()
    idp.add_key("RS256", kid="rsa-1")
    idp.add_key("ES256", kid="ec-1")
    return idp


@pytest.fixture
def jwks(provider: IdentityProvider) -> Iterator[JwksServer]:
    with serve_jwks(provider) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(jwks: JwksServer, clock: Clock) -> OidcVerifier:
    return OidcVerifier(ISSUER, AUDIENCE, jwks_url=jwks.url, leeway=30, clock=clock)


def refused(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    return info.value.message


def test_an_rs256_token_of_the_issuer_gives_its_claims(
    verifier: OidcVerifier, provider: IdentityProvider, clock: Clock
) -> None:
    token = provider.token(provider.keys["rsa-1"], now=clock.now, lifetime=600)
    claims = verifier.verify(token)
    assert claims == OidcClaims(
        subject="alice-id",
        email="alice@example.test",
        groups=("ml-team",),
        issuer=ISSUER,
        expires_at=float(int(clock.now + 600)),
        username="alice-id",
    )


def test_an_es256_token_verifies(verifier: OidcVerifier, provider: IdentityProvider) -> None:
    claims = verifier.verify(provider.token(provider.keys["ec-1"], subject="bob-id"))
    assert claims.subject == "bob-id"


def test_the_username_and_groups_claims_are_configurable(
    jwks: JwksServer, provider: IdentityProvider
) -> None:
    verifier = OidcVerifier(
        ISSUER,
        AUDIENCE,
        jwks_url=jwks.url,
        username_claim="preferred_username",
        groups_claim="roles",
    )
    claims = verifier.verify(provider.token(provider.keys["rsa-1"], roles="admins"))
    assert (claims.username, claims.groups) == ("alice", ("admins",))
    message = refused(verifier, provider.token(provider.keys["rsa-1"], preferred_username=None))
    assert "'preferred_username'" in message and "MLGRID_AUTH_OIDC_USERNAME_CLAIM" in message


def test_an_expired_token_is_refused(
    verifier: OidcVerifier, provider: IdentityProvider, clock: Clock
) -> None:
    token = provider.token(provider.keys["rsa-1"], now=clock.now - 400, lifetime=300)
    assert "JWT expired 100 s ago" in refused(verifier, token)


def test_expiry_within_the_leeway_is_accepted(
    verifier: OidcVerifier, provider: IdentityProvider, clock: Clock
) -> None:
    token = provider.token(provider.keys["rsa-1"], now=clock.now - 320, lifetime=300)
    assert verifier.verify(token).subject == "alice-id"


def test_a_token_not_valid_yet_is_refused(
    verifier: OidcVerifier, provider: IdentityProvider, clock: Clock
) -> None:
    token = provider.token(provider.keys["rsa-1"], nbf=int(clock.now + 600))
    assert "not valid yet" in refused(verifier, token)
    future = provider.token(provider.keys["rsa-1"], now=clock.now + 600)
    assert "issued in the future" in refused(verifier, future)


def test_a_token_of_another_issuer_is_refused(
    verifier: OidcVerifier, provider: IdentityProvider
) -> None:
    token = provider.token(provider.keys["rsa-1"], iss="https://evil.example.test")
    message = refused(verifier, token)
    assert "'https://evil.example.test' is not the configured issuer" in message


def test_a_token_for_another_audience_is_refused(
    verifier: OidcVerifier, provider: IdentityProvider
) -> None:
    assert "audience does not include 'mlgrid'" in refused(
        verifier, provider.token(provider.keys["rsa-1"], aud="another-app")
    )
    both = provider.token(provider.keys["rsa-1"], aud=["another-app", AUDIENCE])
    assert verifier.verify(both).subject == "alice-id"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_token_is_refused(verifier: OidcVerifier, provider: IdentityProvider) -> None:
    token = provider.token(provider.keys["rsa-1"])
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = ".".join([header, _b64({**claims, "sub": "admin"}), signature])
    assert "signature does not verify" in refused(verifier, forged)


def test_alg_none_is_refused(verifier: OidcVerifier, provider: IdentityProvider) -> None:
    claims = jwt.decode(provider.token(provider.keys["rsa-1"]), options={"verify_signature": False})
    unsigned = ".".join([_b64({"alg": "none", "kid": "rsa-1"}), _b64(claims), ""])
    assert "JWT algorithm 'none' is not accepted; allowed: RS256, ES256" in refused(
        verifier, unsigned
    )


def test_hmac_signed_with_the_public_key_is_refused(
    verifier: OidcVerifier, provider: IdentityProvider
) -> None:
    """The classic confusion: HS256 with the issuer's public key (anyone can read it) as secret."""
    public_pem = (
        provider.keys["rsa-1"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = jwt.decode(provider.token(provider.keys["rsa-1"]), options={"verify_signature": False})
    header = _b64({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"})
    body = _b64(claims)
    import hashlib
    import hmac

    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert "JWT algorithm 'HS256' is not accepted" in refused(verifier, forged)


def test_an_es256_token_naming_an_rsa_key_is_refused(
    verifier: OidcVerifier, provider: IdentityProvider
) -> None:
    ec_key = provider.keys["ec-1"]
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time() + 60)},
        ec_key.private,
        algorithm="ES256",
        headers={"kid": "rsa-1"},
    )
    assert "key id 'rsa-1' is not a key for ES256" in refused(verifier, token)


def test_a_rotated_key_is_fetched_on_its_first_token(
    verifier: OidcVerifier, provider: IdentityProvider, jwks: JwksServer, clock: Clock
) -> None:
    verifier.verify(provider.token(provider.keys["rsa-1"], now=clock.now))
    assert len(jwks.requests) == 1
    clock.now += MIN_REFRESH_INTERVAL_S + 1
    rotated = provider.add_key("RS256", kid="rsa-2")
    assert verifier.verify(provider.token(rotated, now=clock.now)).subject == "alice-id"
    assert len(jwks.requests) == 2
    verifier.verify(provider.token(rotated, now=clock.now))
    assert len(jwks.requests) == 2  # cached


def test_unknown_key_ids_refetch_at_most_once_per_interval(
    verifier: OidcVerifier, provider: IdentityProvider, jwks: JwksServer, clock: Clock
) -> None:
    stranger = IdentityProvider()
    for number in range(20):
        key = stranger.add_key("ES256", kid=f"made-up-{number}")
        message = refused(verifier, stranger.token(key, now=clock.now))
        assert f"key id 'made-up-{number}' is not in the issuer's JWKS" in message
    assert len(jwks.requests) == 1
    clock.now += MIN_REFRESH_INTERVAL_S + 1
    refused(verifier, stranger.token(stranger.add_key("ES256", kid="later"), now=clock.now))
    assert len(jwks.requests) == 2


def test_keys_from_a_jwks_file(tmp_path: Path, provider: IdentityProvider) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(provider.jwks()))
    verifier = OidcVerifier(ISSUER, AUDIENCE, jwks_file=path)
    assert verifier.verify(provider.token(provider.keys["ec-1"])).issuer == ISSUER


def test_an_unreachable_jwks_url_is_unavailable_not_unauthenticated(
    provider: IdentityProvider,
) -> None:
    with serve_jwks(provider) as server:
        url = server.url
    verifier = OidcVerifier(ISSUER, AUDIENCE, jwks_url=url)
    with pytest.raises(TemporarilyUnavailable, match="cannot fetch the identity provider's keys"):
        verifier.verify(provider.token(provider.keys["rsa-1"]))


def test_strings_that_are_not_jwts_are_refused(verifier: OidcVerifier) -> None:
    assert not looks_like_jwt("mlg_0123456789abcdef")
    assert "not a JWT" in refused(verifier, "mlg_0123456789abcdef")
    assert "header is not valid" in refused(verifier, "e30x.e30.c2ln")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jwks_url": "http://idp.example.test/jwks"}, "must be an https:// URL"),
        ({}, "set exactly one of the JWKS URL"),
        ({"jwks_url": "https://idp/jwks", "jwks_file": "/x"}, "set exactly one"),
    ],
)
def test_bad_configuration_names_the_setting(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        OidcVerifier(ISSUER, AUDIENCE, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="MLGRID_AUTH_OIDC_AUDIENCE"):
        OidcVerifier(ISSUER, "", jwks_url="https://idp/jwks")


def test_configured_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, jwks: JwksServer, provider: IdentityProvider
) -> None:
    monkeypatch.delenv(env.MLGRID_AUTH_OIDC_ISSUER.name, raising=False)
    assert OidcVerifier.from_env() is None
    monkeypatch.setenv(env.MLGRID_AUTH_OIDC_ISSUER.name, ISSUER)
    monkeypatch.setenv(env.MLGRID_AUTH_OIDC_AUDIENCE.name, AUDIENCE)
    monkeypatch.setenv(env.MLGRID_AUTH_OIDC_JWKS_URL.name, jwks.url)
    monkeypatch.setenv(env.MLGRID_AUTH_OIDC_USERNAME_CLAIM.name, "email")
    verifier = OidcVerifier.from_env()
    assert verifier is not None
    assert verifier.verify(provider.token(provider.keys["rsa-1"])).username == "alice@example.test"
