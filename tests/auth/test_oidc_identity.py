"""Users of an identity provider: real JWTs signed with keys the test makes, verified by the
gateway (and by the services on tunnelled calls), their permissions like any user's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from tests.auth_edge.keys import AUDIENCE, ISSUER, IdentityProvider, serve_jwks

from .conftest import CACHE_SECONDS, AuthStack, error_of, start_auth_stack

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


def test_a_role_given_to_a_group_is_had_while_the_token_lists_the_group(
    oidc_stack: AuthStack, provider: IdentityProvider
) -> None:
    key = provider.keys["rsa-1"]
    admin = oidc_stack.admin
    auth = oidc_stack.auth()
    gateway = trk_grpc.TrackingServiceStub(oidc_stack.gateway())
    experiment_id = gateway.CreateExperiment(
        trk.CreateExperimentRequest(name="team-exp"), metadata=admin
    ).experiment_id
    auth.CreateRole(auth_pb.CreateRoleRequest(name="data-science"), metadata=admin)
    auth.SetPermission(
        auth_pb.SetPermissionRequest(
            permission=auth_pb.Permission(
                resource_type=auth_pb.RESOURCE_TYPE_EXPERIMENT,
                resource_id=experiment_id,
                role="data-science",
                permission="EDIT",
            )
        ),
        metadata=admin,
    )
    # Keycloak lists groups as paths.
    link = auth_pb.AddRoleGroupRequest(role="data-science", group="/ml/data-science")
    member = _bearer(provider.token(key, subject="dana-id", groups=["other", "/ml/data-science"]))
    outsider = _bearer(provider.token(key, subject="erin-id", groups=["other"]))
    # Only an admin links groups; the members of a group are not the admins of its role.
    assert error_of(lambda: auth.AddRoleGroup(link, metadata=member)).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    auth.AddRoleGroup(link, metadata=admin)
    time.sleep(CACHE_SECONDS + 0.2)  # the gateway's own process sees the link within that time
    roles = auth.ListRoles(auth_pb.ListRolesRequest(), metadata=admin).roles
    assert [(r.name, list(r.members), list(r.groups)) for r in roles] == [
        ("data-science", [], ["/ml/data-science"])
    ]

    create = trk.CreateRunRequest(experiment_id=experiment_id)
    # The group's member has the role's EDIT: through the gateway, and on a tunnelled call that
    # the tracking service verifies itself.
    assert gateway.CreateRun(create, metadata=member).run.info.experiment_id == experiment_id
    tunnel = trk_grpc.TrackingServiceStub(oidc_stack.tunnel(TRACKING, member))
    assert tunnel.CreateRun(create, metadata=member).run.info.experiment_id == experiment_id
    refused = error_of(lambda: gateway.CreateRun(create, metadata=outsider))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs EDIT" in (refused.details() or "") and "has READ" in (refused.details() or "")
    # The same user with a token that no longer lists the group is back to the default.
    left = _bearer(provider.token(key, subject="dana-id", groups=["other"]))
    assert error_of(lambda: gateway.CreateRun(create, metadata=left)).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    # Unlinked: the member's current token stops giving the role within the cache time.
    auth.RemoveRoleGroup(
        auth_pb.RemoveRoleGroupRequest(role="data-science", group="/ml/data-science"),
        metadata=admin,
    )
    time.sleep(CACHE_SECONDS * 2 + 0.2)
    for channel in (gateway, tunnel):
        assert error_of(lambda c=channel: c.CreateRun(create, metadata=member)).code() == (
            grpc.StatusCode.PERMISSION_DENIED
        )


@pytest.mark.parametrize("group", ["", "x" * 257, "tab\there"])
def test_a_group_name_that_no_provider_would_send_is_refused(
    oidc_stack: AuthStack, group: str
) -> None:
    auth = oidc_stack.auth()
    with pytest.raises(grpc.RpcError) as raised:
        auth.CreateRole(auth_pb.CreateRoleRequest(name="r"), metadata=oidc_stack.admin)
        auth.AddRoleGroup(
            auth_pb.AddRoleGroupRequest(role="r", group=group), metadata=oidc_stack.admin
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "group" in (raised.value.details() or "")
    assert "x" * 61 not in (raised.value.details() or "")
