"""AuthService and ``mlgrid auth``: who may manage what, roles and default permissions, the
creator's MANAGE, and workspaces (a caller sees only the workspaces it belongs to)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.registry.v1 import registry_service_pb2 as reg
from mlgrid.api.registry.v1 import registry_service_pb2_grpc as reg_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.protocol import WORKSPACE_METADATA

from .conftest import ADMIN, CACHE_SECONDS, AuthStack, error_of


def _tracking(stack: AuthStack) -> trk_grpc.TrackingServiceStub:
    return trk_grpc.TrackingServiceStub(stack.gateway())


def test_only_admins_manage_users(auth_stack: AuthStack) -> None:
    plain = auth_stack.create_user("plain-user")
    err = error_of(
        lambda: auth_stack.auth().CreateUser(
            auth_pb.CreateUserRequest(username="sneaky", password="password-1"), metadata=plain
        )
    )
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "CreateUser needs an admin" in (err.details() or "")
    err = error_of(
        lambda: auth_stack.auth().UpdateUser(
            auth_pb.UpdateUserRequest(username="plain-user", is_admin=True), metadata=plain
        )
    )
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    # Its own password it may change.
    auth_stack.auth().UpdateUser(
        auth_pb.UpdateUserRequest(username="plain-user", password="a-new-password"),
        metadata=plain,
    )


def test_the_creator_manages_what_it_made_and_can_share_it(auth_stack: AuthStack) -> None:
    owner = auth_stack.create_user("owner")
    friend = auth_stack.create_user("friend")
    auth_stack.auth().SetDefaultPermission(
        auth_pb.SetDefaultPermissionRequest(permission="NO_PERMISSIONS", username="friend"),
        metadata=auth_stack.admin,
    )
    experiment_id = (
        _tracking(auth_stack)
        .CreateExperiment(trk.CreateExperimentRequest(name="owned"), metadata=owner)
        .experiment_id
    )
    get = trk.GetExperimentRequest(experiment_id=experiment_id)
    assert (
        error_of(lambda: _tracking(auth_stack).GetExperiment(get, metadata=friend)).code()
        is grpc.StatusCode.PERMISSION_DENIED
    )
    auth_stack.auth().SetPermission(
        auth_pb.SetPermissionRequest(
            permission=auth_pb.Permission(
                resource_type=auth_pb.RESOURCE_TYPE_EXPERIMENT,
                resource_id=experiment_id,
                username="friend",
                permission="READ",
            )
        ),
        metadata=owner,
    )
    assert _tracking(auth_stack).GetExperiment(get, metadata=friend).experiment.name == "owned"
    # READ does not let friend grant anything.
    err = error_of(
        lambda: auth_stack.auth().SetPermission(
            auth_pb.SetPermissionRequest(
                permission=auth_pb.Permission(
                    resource_type=auth_pb.RESOURCE_TYPE_EXPERIMENT,
                    resource_id=experiment_id,
                    username="friend",
                    permission="MANAGE",
                )
            ),
            metadata=friend,
        )
    )
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs MANAGE" in (err.details() or "")


def test_role_grants_reach_their_members(auth_stack: AuthStack) -> None:
    member = auth_stack.create_user("role-member")
    auth_stack.auth().SetDefaultPermission(
        auth_pb.SetDefaultPermissionRequest(permission="NO_PERMISSIONS", username="role-member"),
        metadata=auth_stack.admin,
    )
    registry = reg_grpc.RegistryServiceStub(auth_stack.gateway())
    registry.CreateRegisteredModel(
        reg.CreateRegisteredModelRequest(name="team-model"), metadata=auth_stack.admin
    )
    get = reg.GetRegisteredModelRequest(name="team-model")
    assert (
        error_of(lambda: registry.GetRegisteredModel(get, metadata=member)).code()
        is grpc.StatusCode.PERMISSION_DENIED
    )
    admin = auth_stack.admin
    auth_stack.auth().CreateRole(auth_pb.CreateRoleRequest(name="ml-team"), metadata=admin)
    auth_stack.auth().AddRoleMember(
        auth_pb.AddRoleMemberRequest(role="ml-team", username="role-member"), metadata=admin
    )
    auth_stack.auth().SetPermission(
        auth_pb.SetPermissionRequest(
            permission=auth_pb.Permission(
                resource_type=auth_pb.RESOURCE_TYPE_REGISTERED_MODEL,
                resource_id="team-model",
                role="ml-team",
                permission="EDIT",
            )
        ),
        metadata=admin,
    )
    registry.UpdateRegisteredModel(
        reg.UpdateRegisteredModelRequest(name="team-model", description="by the team"),
        metadata=member,
    )
    # Renamed, the model keeps the role's grant.
    registry.RenameRegisteredModel(
        reg.RenameRegisteredModelRequest(name="team-model", new_name="team-model-2"),
        metadata=member,
    )
    got = registry.GetRegisteredModel(
        reg.GetRegisteredModelRequest(name="team-model-2"), metadata=member
    )
    assert got.registered_model.description == "by the team"


def test_workspaces_hide_what_non_members_may_not_see(auth_stack: AuthStack) -> None:
    admin = auth_stack.admin
    inside = auth_stack.create_user("ws-editor")
    reader = auth_stack.create_user("ws-reader")
    outside = auth_stack.create_user("ws-outsider")
    auth_stack.auth().CreateWorkspace(auth_pb.CreateWorkspaceRequest(name="team-a"), metadata=admin)
    for name, level in (("ws-editor", "EDIT"), ("ws-reader", "READ")):
        auth_stack.auth().AddWorkspaceMember(
            auth_pb.AddWorkspaceMemberRequest(workspace="team-a", username=name, permission=level),
            metadata=admin,
        )
    in_team = [*inside, (WORKSPACE_METADATA, "team-a")]
    experiment_id = (
        _tracking(auth_stack)
        .CreateExperiment(trk.CreateExperimentRequest(name="team-a-exp"), metadata=in_team)
        .experiment_id
    )
    # The outsider (default permission READ) neither sees nor reads it; the reader does both.
    for who, visible in ((outside, False), (reader, True), (inside, True)):
        listed = _tracking(auth_stack).SearchExperiments(
            trk.SearchExperimentsRequest(max_results=1000), metadata=who
        )
        assert (experiment_id in {e.experiment_id for e in listed.experiments}) is visible
    get = trk.GetExperimentRequest(experiment_id=experiment_id)
    err = error_of(lambda: _tracking(auth_stack).GetExperiment(get, metadata=outside))
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "has NO_PERMISSIONS" in (err.details() or "")
    # The reader may not write there, nor create in the workspace.
    err = error_of(
        lambda: _tracking(auth_stack).CreateRun(
            trk.CreateRunRequest(experiment_id=experiment_id), metadata=reader
        )
    )
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    err = error_of(
        lambda: _tracking(auth_stack).CreateExperiment(
            trk.CreateExperimentRequest(name="nope"),
            metadata=[*reader, (WORKSPACE_METADATA, "team-a")],
        )
    )
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs EDIT there" in (err.details() or "")
    # Nothing half-written: the refused experiment does not exist.
    assert (
        error_of(
            lambda: _tracking(auth_stack).GetExperimentByName(
                trk.GetExperimentByNameRequest(experiment_name="nope"), metadata=admin
            )
        ).code()
        is grpc.StatusCode.NOT_FOUND
    )
    # Each sees only its own workspaces.
    spaces = auth_stack.auth().ListWorkspaces(auth_pb.ListWorkspacesRequest(), metadata=outside)
    assert [w.name for w in spaces.workspaces] == []
    spaces = auth_stack.auth().ListWorkspaces(auth_pb.ListWorkspacesRequest(), metadata=reader)
    assert [w.name for w in spaces.workspaces] == ["team-a"]
    who = auth_stack.auth().WhoAmI(auth_pb.WhoAmIRequest(), metadata=reader)
    assert list(who.workspaces) == ["default", "team-a"]


def _cli(
    auth_stack: AuthStack, *args: str, user: tuple[str, str] = ADMIN
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLGRID_", "MLFLOW_"))}
    environment.update(
        MLGRID_TRACKING_URI=auth_stack.stack.tracking_uri,
        MLGRID_TRACKING_USERNAME=user[0],
        MLGRID_TRACKING_PASSWORD=user[1],
    )
    return subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "auth", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_manages_users_tokens_and_grants(auth_stack: AuthStack) -> None:
    done = _cli(auth_stack, "users", "create", "cli-user", "--password", "cli-password")
    assert done.returncode == 0, done.stderr
    listed = _cli(auth_stack, "users", "list")
    assert "cli-user" in listed.stdout
    token = _cli(auth_stack, "tokens", "create", "laptop", user=("cli-user", "cli-password"))
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().startswith("mlg_")
    who = _cli(auth_stack, "whoami", user=("cli-user", "cli-password"))
    assert who.stdout.startswith("cli-user (admin: false")
    denied = _cli(auth_stack, "users", "delete", "admin", user=("cli-user", "cli-password"))
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    assert _cli(auth_stack, "set-default", "READ").returncode == 0
    assert _cli(auth_stack, "users", "delete", "cli-user").returncode == 0
    assert "cli-user" not in _cli(auth_stack, "users", "list").stdout


@pytest.mark.parametrize("level", ["WRITE", ""])
def test_bad_permission_names_the_field(auth_stack: AuthStack, level: str) -> None:
    err = error_of(
        lambda: auth_stack.auth().SetDefaultPermission(
            auth_pb.SetDefaultPermissionRequest(permission=level), metadata=auth_stack.admin
        )
    )
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "permission" in (err.details() or "") and "use one of NO_PERMISSIONS, READ" in (
        err.details() or ""
    )


def test_cli_gives_a_role_to_an_identity_provider_group(auth_stack: AuthStack) -> None:
    assert _cli(auth_stack, "roles", "create", "cli-team").returncode == 0
    added = _cli(auth_stack, "roles", "add-group", "cli-team", "/org/cli team")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "members of group /org/cli team have role cli-team"
    listed = _cli(auth_stack, "roles", "list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith("cli-team"))
    assert "/org/cli team" in row
    missing = _cli(auth_stack, "roles", "add-group", "no-such-role", "g")
    assert missing.returncode == 1 and "role 'no-such-role' does not exist" in missing.stderr
    assert _cli(auth_stack, "roles", "remove-group", "cli-team", "/org/cli team").returncode == 0
    listed = _cli(auth_stack, "roles", "list")
    assert "/org/cli team" not in listed.stdout


def test_a_user_lists_its_tokens_and_revokes_one_by_name(auth_stack: AuthStack) -> None:
    """By RPC and with ``mlgrid auth tokens``: the token stops working, the others do not, and
    a user cannot revoke another's token by name (an admin can)."""
    owner = auth_stack.create_user("token-namer")
    user = ("token-namer", "token-namer-password")
    auth = auth_stack.auth()
    secrets = {
        name: auth.CreateAccessToken(
            auth_pb.CreateAccessTokenRequest(name=name), metadata=owner
        ).token
        for name in ("laptop", "ci")
    }
    listed = _cli(auth_stack, "tokens", "list", user=user)
    assert listed.returncode == 0, listed.stderr
    assert {"laptop", "ci"} <= set(listed.stdout.split())
    done = _cli(auth_stack, "tokens", "revoke", "--name", "laptop", user=user)
    assert (done.returncode, done.stdout.strip()) == (0, "revoked 1 token named 'laptop'")
    whoami = auth_pb.WhoAmIRequest()

    def with_token(name: str) -> grpc.StatusCode:
        bearer = [("authorization", f"Bearer {secrets[name]}")]
        try:
            auth.WhoAmI(whoami, metadata=bearer)
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    time.sleep(CACHE_SECONDS + 0.1)  # the credential cache
    assert with_token("laptop") is grpc.StatusCode.UNAUTHENTICATED
    assert with_token("ci") is grpc.StatusCode.OK
    names = [
        t.name
        for t in auth.ListAccessTokens(
            auth_pb.ListAccessTokensRequest(), metadata=owner
        ).access_tokens
    ]
    assert names == ["ci"]
    again = _cli(auth_stack, "tokens", "revoke", "--name", "laptop", user=user)
    assert again.returncode == 1
    assert "user 'token-namer' has no access token named 'laptop'" in again.stderr
    neither = _cli(auth_stack, "tokens", "revoke", user=user)
    assert neither.returncode == 2 and "give a TOKEN_ID or --name NAME" in neither.stderr
    # Another user's tokens: only an admin revokes them by name.
    other = auth_stack.create_user("token-bystander")
    err = error_of(
        lambda: auth.RevokeAccessToken(
            auth_pb.RevokeAccessTokenRequest(name="ci", username="token-namer"), metadata=other
        )
    )
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "RevokeAccessToken for another user needs an admin" in (err.details() or "")
    both = error_of(
        lambda: auth.RevokeAccessToken(
            auth_pb.RevokeAccessTokenRequest(token_id="x", name="ci"), metadata=owner
        )
    )
    assert both.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "give token_id or name" in (both.details() or "")
    answer = auth.RevokeAccessToken(
        auth_pb.RevokeAccessTokenRequest(name="ci", username="token-namer"),
        metadata=auth_stack.admin,
    )
    assert answer.revoked == 1
