"""``mlgrid auth …``: users, access tokens, roles, grants, workspaces and the default permission
of a stack with auth on (docs/auth.md). Credentials come from MLGRID_TRACKING_USERNAME /
_PASSWORD or MLGRID_TRACKING_TOKEN (MLflow's names too), as for every other command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from google.protobuf.json_format import MessageToDict

from mlgrid.api.auth.v1 import auth_service_pb2 as pb
from mlgrid.cli._tables import (
    ErrorReportingGroup,
    format_timestamp,
    output_option,
    print_json,
    print_table,
    tracking_uri_option,
)
from mlgrid.tracking_uri import get_tracking_uri
from mlgrid.transport import Transport, get_transport

_KINDS = {
    "experiment": pb.RESOURCE_TYPE_EXPERIMENT,
    "registered-model": pb.RESOURCE_TYPE_REGISTERED_MODEL,
}
_LEVELS = ["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"]
_KIND_NAMES = {v: k for k, v in _KINDS.items()}


def _transport(tracking_uri: str | None) -> Transport:
    return get_transport(tracking_uri or get_tracking_uri())


def _call(tracking_uri: str | None, method: str, request: Any) -> Any:
    transport = _transport(tracking_uri)
    stub: Callable[..., Any] = getattr(transport.auth, method)
    return transport.call(stub, request)


def _json(message: Any) -> None:
    print_json(MessageToDict(message, preserving_proto_field_name=True))


@click.group(cls=ErrorReportingGroup)
def auth() -> None:
    """Manage users, tokens, roles, permissions and workspaces."""


@auth.command()
@tracking_uri_option
def whoami(tracking_uri: str | None) -> None:
    """Show who the stack takes you for."""
    answer = _call(tracking_uri, "WhoAmI", pb.WhoAmIRequest())
    if not answer.auth_enabled:
        click.echo("auth is off on this stack: every caller may do everything")
        return
    click.echo(
        f"{answer.subject} (admin: {str(answer.is_admin).lower()}; workspaces: "
        f"{', '.join(answer.workspaces)})"
    )


@auth.command("set-default")
@click.argument("permission", type=click.Choice(_LEVELS, case_sensitive=False))
@click.option("--username", default="", help="One user's default (else everyone's).")
@tracking_uri_option
def set_default(permission: str, username: str, tracking_uri: str | None) -> None:
    """Set the permission callers have where nobody granted them anything."""
    _call(
        tracking_uri,
        "SetDefaultPermission",
        pb.SetDefaultPermissionRequest(permission=permission.upper(), username=username),
    )
    click.echo(f"default permission{' of ' + username if username else ''}: {permission.upper()}")


# ---------------------------------------------------------------- users


@auth.group(cls=ErrorReportingGroup)
def users() -> None:
    """Create, list and delete users."""


@users.command("create")
@click.argument("username")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 8 characters.",
)
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@tracking_uri_option
def users_create(username: str, password: str, admin: bool, tracking_uri: str | None) -> None:
    """Create a user."""
    _call(
        tracking_uri,
        "CreateUser",
        pb.CreateUserRequest(username=username, password=password, is_admin=admin),
    )
    click.echo(f"created user {username}{' (admin)' if admin else ''}")


@users.command("list")
@output_option
@tracking_uri_option
def users_list(output: str, tracking_uri: str | None) -> None:
    """List users."""
    answer = _call(tracking_uri, "ListUsers", pb.ListUsersRequest())
    if output == "json":
        _json(answer)
        return
    print_table(
        ["username", "admin", "roles", "workspaces", "created"],
        [
            [
                u.username,
                u.is_admin,
                ",".join(u.roles),
                ",".join(u.workspaces),
                format_timestamp(u.creation_time),
            ]
            for u in answer.users
        ],
    )


@users.command("delete")
@click.argument("username")
@tracking_uri_option
def users_delete(username: str, tracking_uri: str | None) -> None:
    """Delete a user with its tokens and grants."""
    _call(tracking_uri, "DeleteUser", pb.DeleteUserRequest(username=username))
    click.echo(f"deleted user {username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@tracking_uri_option
def users_set_password(username: str, password: str, tracking_uri: str | None) -> None:
    """Change a user's password (your own, or any as an admin)."""
    _call(tracking_uri, "UpdateUser", pb.UpdateUserRequest(username=username, password=password))
    click.echo(f"password of {username} changed")


# ---------------------------------------------------------------- tokens


@auth.group(cls=ErrorReportingGroup)
def tokens() -> None:
    """Create, list and revoke access tokens."""


@tokens.command("create")
@click.argument("name")
@click.option("--expires-in", type=click.IntRange(min=0), default=0, help="Seconds (0: never).")
@click.option("--username", default="", help="Whose token (admins only for others).")
@tracking_uri_option
def tokens_create(name: str, expires_in: int, username: str, tracking_uri: str | None) -> None:
    """Create an access token and print its secret (shown this once)."""
    answer = _call(
        tracking_uri,
        "CreateAccessToken",
        pb.CreateAccessTokenRequest(name=name, expires_in_seconds=expires_in, username=username),
    )
    click.echo(f"token id: {answer.access_token.token_id}", err=True)
    click.echo(answer.token)


@tokens.command("list")
@click.option("--username", default="", help="Whose tokens (admins only for others).")
@output_option
@tracking_uri_option
def tokens_list(username: str, output: str, tracking_uri: str | None) -> None:
    """List access tokens (never their secrets)."""
    answer = _call(tracking_uri, "ListAccessTokens", pb.ListAccessTokensRequest(username=username))
    if output == "json":
        _json(answer)
        return
    print_table(
        ["token_id", "name", "username", "created", "expires", "confined_to"],
        [
            [
                t.token_id,
                t.name,
                t.username,
                format_timestamp(t.creation_time),
                format_timestamp(t.expiration_time) if t.expiration_time else "never",
                # A project run's token works in its run's experiment only (docs/auth.md).
                f"experiment {t.experiment_id}" if t.experiment_id else "",
            ]
            for t in answer.access_tokens
        ],
    )


@tokens.command("revoke")
@click.argument("token_id", required=False, default="")
@click.option("--name", default="", help="Revoke by the name given at creation instead of by id.")
@click.option("--username", default="", help="With --name: whose token (admins only for others).")
@tracking_uri_option
def tokens_revoke(token_id: str, name: str, username: str, tracking_uri: str | None) -> None:
    """Revoke an access token: by TOKEN_ID, or by --name (every token of that name)."""
    if bool(token_id) == bool(name):
        raise click.UsageError("give a TOKEN_ID or --name NAME (one of them)")
    if username and not name:
        raise click.UsageError("--username goes with --name (a TOKEN_ID names its owner)")
    answer = _call(
        tracking_uri,
        "RevokeAccessToken",
        pb.RevokeAccessTokenRequest(token_id=token_id, name=name, username=username),
    )
    if token_id:
        click.echo(f"revoked token {token_id}")
    else:
        plural = "s" if answer.revoked != 1 else ""
        click.echo(f"revoked {answer.revoked} token{plural} named {name!r}")


# ---------------------------------------------------------------- grants


def _principal(username: str, role: str) -> dict[str, str]:
    if bool(username) == bool(role):
        raise click.UsageError("give exactly one of --username or --role")
    return {"username": username, "role": role}


@auth.group(cls=ErrorReportingGroup)
def grants() -> None:
    """Grant, revoke and list permissions on experiments and registered models."""


@grants.command("set")
@click.argument("kind", type=click.Choice(sorted(_KINDS)))
@click.argument("resource_id")
@click.argument("permission", type=click.Choice(_LEVELS, case_sensitive=False))
@click.option("--username", default="")
@click.option("--role", default="")
@tracking_uri_option
def grants_set(
    kind: str, resource_id: str, permission: str, username: str, role: str, tracking_uri: str | None
) -> None:
    """Grant PERMISSION on an experiment (by id) or registered model (by name)."""
    grant = pb.Permission(
        resource_type=_KINDS[kind],
        resource_id=resource_id,
        permission=permission.upper(),
        **_principal(username, role),
    )  # type: ignore[arg-type]
    _call(tracking_uri, "SetPermission", pb.SetPermissionRequest(permission=grant))
    click.echo(f"{username or 'role ' + role}: {permission.upper()} on {kind} {resource_id}")


@grants.command("delete")
@click.argument("kind", type=click.Choice(sorted(_KINDS)))
@click.argument("resource_id")
@click.option("--username", default="")
@click.option("--role", default="")
@tracking_uri_option
def grants_delete(
    kind: str, resource_id: str, username: str, role: str, tracking_uri: str | None
) -> None:
    """Remove a grant."""
    _call(
        tracking_uri,
        "DeletePermission",
        pb.DeletePermissionRequest(
            resource_type=_KINDS[kind], resource_id=resource_id, **_principal(username, role)
        ),
    )  # type: ignore[arg-type]
    click.echo("grant removed")


@grants.command("list")
@click.option("--kind", type=click.Choice(sorted(_KINDS)), default=None)
@click.option("--resource-id", default="")
@click.option("--username", default="")
@click.option("--role", default="")
@output_option
@tracking_uri_option
def grants_list(
    kind: str | None,
    resource_id: str,
    username: str,
    role: str,
    output: str,
    tracking_uri: str | None,
) -> None:
    """List grants."""
    request = pb.ListPermissionsRequest(
        resource_type=_KINDS[kind] if kind else pb.RESOURCE_TYPE_UNSPECIFIED,
        resource_id=resource_id,
        username=username,
        role=role,
    )  # type: ignore[arg-type]
    answer = _call(tracking_uri, "ListPermissions", request)
    if output == "json":
        _json(answer)
        return
    print_table(
        ["kind", "resource", "user", "role", "permission"],
        [
            [_KIND_NAMES.get(p.resource_type, "?"), p.resource_id, p.username, p.role, p.permission]
            for p in answer.permissions
        ],
    )


# ---------------------------------------------------------------- roles


@auth.group(cls=ErrorReportingGroup)
def roles() -> None:
    """Create roles (named groups of users) and manage their members, and the identity
    provider's groups whose members have them."""


@roles.command("create")
@click.argument("name")
@click.option("--description", default="")
@tracking_uri_option
def roles_create(name: str, description: str, tracking_uri: str | None) -> None:
    """Create a role."""
    _call(tracking_uri, "CreateRole", pb.CreateRoleRequest(name=name, description=description))
    click.echo(f"created role {name}")


@roles.command("delete")
@click.argument("name")
@tracking_uri_option
def roles_delete(name: str, tracking_uri: str | None) -> None:
    """Delete a role and its grants."""
    _call(tracking_uri, "DeleteRole", pb.DeleteRoleRequest(name=name))
    click.echo(f"deleted role {name}")


@roles.command("list")
@tracking_uri_option
def roles_list(tracking_uri: str | None) -> None:
    """List roles, members and identity-provider groups."""
    answer = _call(tracking_uri, "ListRoles", pb.ListRolesRequest())
    print_table(
        ["role", "members", "groups", "description"],
        [[r.name, ",".join(r.members), ",".join(r.groups), r.description] for r in answer.roles],
    )


@roles.command("add-member")
@click.argument("role")
@click.argument("username")
@tracking_uri_option
def roles_add(role: str, username: str, tracking_uri: str | None) -> None:
    """Add a user to a role."""
    _call(tracking_uri, "AddRoleMember", pb.AddRoleMemberRequest(role=role, username=username))
    click.echo(f"{username} is in role {role}")


@roles.command("remove-member")
@click.argument("role")
@click.argument("username")
@tracking_uri_option
def roles_remove(role: str, username: str, tracking_uri: str | None) -> None:
    """Remove a user from a role."""
    _call(
        tracking_uri, "RemoveRoleMember", pb.RemoveRoleMemberRequest(role=role, username=username)
    )
    click.echo(f"{username} left role {role}")


@roles.command("add-group")
@click.argument("role")
@click.argument("group")
@tracking_uri_option
def roles_add_group(role: str, group: str, tracking_uri: str | None) -> None:
    """Give a role to every user whose identity-provider token lists GROUP."""
    _call(tracking_uri, "AddRoleGroup", pb.AddRoleGroupRequest(role=role, group=group))
    click.echo(f"members of group {group} have role {role}")


@roles.command("remove-group")
@click.argument("role")
@click.argument("group")
@tracking_uri_option
def roles_remove_group(role: str, group: str, tracking_uri: str | None) -> None:
    """Stop giving a role to the members of GROUP."""
    _call(tracking_uri, "RemoveRoleGroup", pb.RemoveRoleGroupRequest(role=role, group=group))
    click.echo(f"members of group {group} no longer have role {role}")


# ---------------------------------------------------------------- workspaces


@auth.group(cls=ErrorReportingGroup)
def workspaces() -> None:
    """Create workspaces and manage their members."""


@workspaces.command("create")
@click.argument("name")
@tracking_uri_option
def workspaces_create(name: str, tracking_uri: str | None) -> None:
    """Create a workspace."""
    _call(tracking_uri, "CreateWorkspace", pb.CreateWorkspaceRequest(name=name))
    click.echo(f"created workspace {name}")


@workspaces.command("delete")
@click.argument("name")
@tracking_uri_option
def workspaces_delete(name: str, tracking_uri: str | None) -> None:
    """Delete a workspace (its resources return to the default workspace)."""
    _call(tracking_uri, "DeleteWorkspace", pb.DeleteWorkspaceRequest(name=name))
    click.echo(f"deleted workspace {name}")


@workspaces.command("list")
@tracking_uri_option
def workspaces_list(tracking_uri: str | None) -> None:
    """List the workspaces you belong to (all of them for an admin)."""
    answer = _call(tracking_uri, "ListWorkspaces", pb.ListWorkspacesRequest())
    print_table(
        ["workspace", "members"],
        [
            [w.name, ", ".join(f"{m.username}:{m.permission}" for m in w.members)]
            for w in answer.workspaces
        ],
    )


@workspaces.command("add-member")
@click.argument("workspace")
@click.argument("username")
@click.option(
    "--permission",
    type=click.Choice(_LEVELS[:4], case_sensitive=False),
    default="READ",
    show_default=True,
)
@tracking_uri_option
def workspaces_add(
    workspace: str, username: str, permission: str, tracking_uri: str | None
) -> None:
    """Add a user to a workspace with a permission on its resources."""
    _call(
        tracking_uri,
        "AddWorkspaceMember",
        pb.AddWorkspaceMemberRequest(
            workspace=workspace, username=username, permission=permission.upper()
        ),
    )
    click.echo(f"{username} is in workspace {workspace} with {permission.upper()}")


@workspaces.command("remove-member")
@click.argument("workspace")
@click.argument("username")
@tracking_uri_option
def workspaces_remove(workspace: str, username: str, tracking_uri: str | None) -> None:
    """Remove a user from a workspace."""
    _call(
        tracking_uri,
        "RemoveWorkspaceMember",
        pb.RemoveWorkspaceMemberRequest(workspace=workspace, username=username),
    )
    click.echo(f"{username} left workspace {workspace}")
