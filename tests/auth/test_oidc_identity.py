"""Users of an identity provider: real JWTs signed with keys the test makes, verified by the
gateway (and by the services on tunnelled calls), their permissions like any user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from tests.auth_edge.keys import AUDIENCE, ISSUER, IdentityProvider, serve_jwks

from .conftest import AuthStack, error_of, start_auth_stack

TRACKING = "mlgrid.api.tracking.v1.TrackingService"


@pytest.fixture
def provider() -> IdentityProvider:
    idp = IdentityProvider()
    idp.add_key("RS256", kid="rsa-1")
    return idp


@pytest.fixture
def oidc_stack(
    provider: IdentityProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AuthStack]:
    with serve_jwks(provider) as jwks:
        monkeypatch.setenv("MLGRID_AUTH_OIDC_ISSUER", ISSUER)
        monkeypatch.setenv("MLGRID_AUTH_OIDC_AUDIENCE", AUDIENCE)
        monkeypatch.setenv("MLGRID_AUTH_OIDC_JWKS_URL", jwks.url)
        stack = start_auth_stack(tmp_path)
        try:
            yield stack
        finally:
            stack.close()


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_a_provider_user_works_through_the_gateway_and_a_tunnel(
    oidc_stack: AuthStack, provider: IdentityProvider
) -> None:
    key = provider.keys["rsa-1"]
    token = _bearer(provider.token(key, subject="carol-id"))
    who = oidc_stack.auth().WhoAmI(auth_pb.WhoAmIRequest(), metadata=token)
    assert who.subject == "carol-id" and not who.is_admin
    gateway = trk_grpc.TrackingServiceStub(oidc_stack.gateway())
    experiment_id = gateway.CreateExperiment(
        trk.CreateExperimentRequest(name="carol-exp"), metadata=token
    ).experiment_id
    # The creator's MANAGE, checked by the tracking service itself on a tunnelled call.
    tunnel = trk_grpc.TrackingServiceStub(oidc_stack.tunnel(TRACKING, token))
    tunnel.DeleteExperiment(
        trk.DeleteExperimentRequest(experiment_id=experiment_id), metadata=token
    )
    grants = oidc_stack.auth().ListPermissions(
        auth_pb.ListPermissionsRequest(username="carol-id"), metadata=oidc_stack.admin
    )
    assert [(p.resource_id, p.permission) for p in grants.permissions] == [
        (experiment_id, "MANAGE")
    ]


def test_tokens_of_another_issuer_or_expired_are_unauthenticated(
    oidc_stack: AuthStack, provider: IdentityProvider
) -> None:
    key = provider.add_key("RS256", kid="rsa-2")
    gateway = trk_grpc.TrackingServiceStub(oidc_stack.gateway())
    for token, reason in (
        (provider.token(key, iss="https://elsewhere.example"), "issuer"),
        (provider.token(key, lifetime=-600), "expired"),
    ):
        err = error_of(
            lambda token=token: gateway.SearchExperiments(
                trk.SearchExperimentsRequest(), metadata=_bearer(token)
            )
        )
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED
        assert reason in (err.details() or "").lower(), err.details()
