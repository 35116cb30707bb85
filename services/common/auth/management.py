"""AuthService: managing users, tokens, roles, grants and workspaces (protos/…/auth/v1).

Served by the tracking process (as MLflow's basic-auth app lives in its tracking server); the
gateway routes it like the other services. Each call checks its own rule (admin, the user
itself, or MANAGE on the resource a grant is about) with the caller the interceptor
established, and drops this process's caches after a change (other processes see it within
their cache time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlgrid.api.auth.v1 import auth_service_pb2 as pb
from mlgrid.api.auth.v1 import auth_service_pb2_grpc as pb_grpc
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.store.paging import decode_page_token, encode_page_token

from .identity import Identity, current_identity
from .permissions import KIND_NUMBERS, Permission, ResourceKind, parse_kind, parse_permission
from .policy import ANYONE, Rule

if TYPE_CHECKING:
    # Not at run time: the store (SQLAlchemy, the auth schema) loads when auth is first used,
    # so a tracking service with auth off (an embedded stack) never imports it.
    from .runtime import AuthRuntime
    from .store import GrantRecord, TokenRecord, UserRecord

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuthService"].full_name
_MAX_PAGE = 1000


def management_rules() -> dict[str, Rule]:
    """Every AuthService call is open to any authenticated caller; each checks the rest."""
    methods = pb.DESCRIPTOR.services_by_name["AuthService"].methods
    return {f"/{SERVICE_NAME}/{m.name}": ANYONE for m in methods}


def _user_pb(user: UserRecord) -> pb.User:
    return pb.User(
        username=user.username,
        is_admin=user.is_admin,
        creation_time=user.creation_time,
        roles=list(user.roles),
        workspaces=list(user.workspaces),
    )


def _token_pb(token: TokenRecord) -> pb.AccessToken:
    return pb.AccessToken(
        token_id=token.token_id,
        name=token.name,
        username=token.username,
        creation_time=token.creation_time,
        expiration_time=token.expiration_time,
        experiment_id=token.scope,
    )


def _grant_pb(grant: GrantRecord) -> pb.Permission:
    return pb.Permission(
        resource_type=KIND_NUMBERS[grant.kind],  # type: ignore[arg-type]
        resource_id=grant.resource_id,
        username=grant.username,
        role=grant.role,
        permission=grant.permission.name,
    )


class AuthServicer(pb_grpc.AuthServiceServicer):
    """The management calls over the process's auth runtime (None: auth is off)."""

    def __init__(self, runtime: Callable[[], AuthRuntime | None]) -> None:
        self._runtime = runtime

    # -- helpers -------------------------------------------------------------------------

    def _on(self) -> AuthRuntime:
        runtime = self._runtime()
        if runtime is None:
            raise InvalidParameterValue(
                "auth is off on this server: every caller may do everything, and there are no "
                "users to manage (MLGRID_AUTH=true turns it on, docs/auth.md)"
            )
        return runtime

    def _admin(self, action: str) -> tuple[AuthRuntime, Identity]:
        runtime, caller = self._on(), current_identity()
        runtime.access.require_admin(caller, action)
        return runtime, caller

    def _self_or_admin(self, username: str, action: str) -> tuple[AuthRuntime, str]:
        runtime, caller = self._on(), current_identity()
        target = username or caller.subject
        if target != caller.subject:
            runtime.access.require_admin(caller, f"{action} for another user")
        return runtime, target

    # -- who ---------------------------------------------------------------------------------

    def WhoAmI(self, request, context):
        runtime = self._runtime()
        caller = current_identity()
        if runtime is None:
            return pb.WhoAmIResponse(is_admin=True, auth_enabled=False)
        from .store import DEFAULT_WORKSPACE  # loaded with the runtime already

        view = runtime.access.view(caller) if not caller.is_service else None
        return pb.WhoAmIResponse(
            subject=caller.subject,
            is_admin=runtime.access.is_admin(caller),
            workspaces=sorted(view.memberships) if view else [DEFAULT_WORKSPACE],
            auth_enabled=True,
        )

    # -- users -------------------------------------------------------------------------------

    def CreateUser(self, request, context):
        runtime, _ = self._admin("CreateUser")
        user = runtime.store.create_user(request.username, request.password, request.is_admin)
        runtime.changed()
        return pb.CreateUserResponse(user=_user_pb(runtime.store.get_user(user.username)))

    def GetUser(self, request, context):
        runtime, target = self._self_or_admin(request.username, "GetUser")
        return pb.GetUserResponse(user=_user_pb(runtime.store.get_user(target)))

    def ListUsers(self, request, context):
        runtime, _ = self._admin("ListUsers")
        if request.page_size < 0:
            raise InvalidParameterValue(f"page_size is {request.page_size}; use 1 to {_MAX_PAGE}")
        size = min(request.page_size or _MAX_PAGE, _MAX_PAGE)
        offset = decode_page_token(request.page_token, "users") if request.page_token else 0
        users = runtime.store.list_users(offset, size + 1)
        token = encode_page_token(offset + size, "users") if len(users) > size else ""
        return pb.ListUsersResponse(
            users=[_user_pb(u) for u in users[:size]], next_page_token=token
        )

    def UpdateUser(self, request, context):
        runtime, target = self._self_or_admin(request.username, "UpdateUser")
        is_admin = request.is_admin if request.HasField("is_admin") else None
        if is_admin is not None:
            runtime.access.require_admin(current_identity(), "changing is_admin")
        password = request.password if request.HasField("password") else None
        user = runtime.store.update_user(target, password, is_admin)
        runtime.changed()
        return pb.UpdateUserResponse(user=_user_pb(user))

    def DeleteUser(self, request, context):
        runtime, caller = self._admin("DeleteUser")
        if request.username == caller.subject:
            raise InvalidParameterValue("an admin cannot delete itself; ask another admin")
        runtime.store.delete_user(request.username)
        runtime.changed()
        return pb.DeleteUserResponse()

    # -- tokens ------------------------------------------------------------------------------

    def CreateAccessToken(self, request, context):
        runtime, target = self._self_or_admin(request.username, "CreateAccessToken")
        if current_identity().is_service:
            raise InvalidParameterValue("mlgrid's services have no tokens; name a username")
        record, token = runtime.store.create_token(target, request.name, request.expires_in_seconds)
        return pb.CreateAccessTokenResponse(access_token=_token_pb(record), token=token)

    def ListAccessTokens(self, request, context):
        runtime, target = self._self_or_admin(request.username, "ListAccessTokens")
        tokens = runtime.store.list_tokens(target)
        return pb.ListAccessTokensResponse(access_tokens=[_token_pb(t) for t in tokens])

    def RevokeAccessToken(self, request, context):
        if bool(request.token_id) == bool(request.name):
            which = "both are given" if request.token_id else "both are empty"
            raise InvalidParameterValue(
                f"give token_id or name (the token's id, or the name it was created with): {which}"
            )
        if request.token_id and request.username:
            raise InvalidParameterValue("username goes with name; a token_id names its owner")
        if request.name:
            runtime, target = self._self_or_admin(request.username, "RevokeAccessToken")
            revoked = runtime.store.revoke_user_tokens_named(target, request.name)
        else:
            runtime = self._on()
            owner = runtime.store.token_owner(request.token_id)
            self._self_or_admin(owner, "RevokeAccessToken")
            runtime.store.revoke_token(request.token_id)
            revoked = 1
        runtime.changed()
        return pb.RevokeAccessTokenResponse(revoked=revoked)

    # -- roles -------------------------------------------------------------------------------

    def CreateRole(self, request, context):
        runtime, _ = self._admin("CreateRole")
        runtime.store.create_role(request.name, request.description)
        return pb.CreateRoleResponse(
            role=pb.Role(name=request.name, description=request.description)
        )

    def DeleteRole(self, request, context):
        runtime, _ = self._admin("DeleteRole")
        runtime.store.delete_role(request.name)
        runtime.changed()
        return pb.DeleteRoleResponse()

    def ListRoles(self, request, context):
        runtime, _ = self._admin("ListRoles")
        return pb.ListRolesResponse(
            roles=[
                pb.Role(
                    name=role.name,
                    description=role.description,
                    members=role.members,
                    groups=role.groups,
                )
                for role in runtime.store.list_roles()
            ]
        )

    def AddRoleMember(self, request, context):
        runtime, _ = self._admin("AddRoleMember")
        runtime.store.set_role_member(request.role, request.username, True)
        runtime.changed()
        return pb.AddRoleMemberResponse()

    def RemoveRoleMember(self, request, context):
        runtime, _ = self._admin("RemoveRoleMember")
        runtime.store.set_role_member(request.role, request.username, False)
        runtime.changed()
        return pb.RemoveRoleMemberResponse()

    def AddRoleGroup(self, request, context):
        runtime, _ = self._admin("AddRoleGroup")
        runtime.store.set_role_group(request.role, request.group, True)
        runtime.changed()
        return pb.AddRoleGroupResponse()

    def RemoveRoleGroup(self, request, context):
        runtime, _ = self._admin("RemoveRoleGroup")
        runtime.store.set_role_group(request.role, request.group, False)
        runtime.changed()
        return pb.RemoveRoleGroupResponse()

    # -- grants ------------------------------------------------------------------------------

    def _require_manage(
        self, runtime: AuthRuntime, kind: ResourceKind, resource_id: str, action: str
    ) -> None:
        if not resource_id:
            raise InvalidParameterValue("resource_id must name the resource")
        runtime.access.require(current_identity(), kind, resource_id, Permission.MANAGE, action)

    def SetPermission(self, request, context):
        runtime = self._on()
        grant = request.permission
        kind = parse_kind(grant.resource_type)
        level = parse_permission(grant.permission, "permission.permission")
        self._require_manage(runtime, kind, grant.resource_id, "SetPermission")
        runtime.store.set_grant(
            kind, grant.resource_id, level, username=grant.username, role=grant.role
        )
        runtime.changed()
        return pb.SetPermissionResponse()

    def DeletePermission(self, request, context):
        runtime = self._on()
        kind = parse_kind(request.resource_type)
        self._require_manage(runtime, kind, request.resource_id, "DeletePermission")
        runtime.store.delete_grant(
            kind, request.resource_id, username=request.username, role=request.role
        )
        runtime.changed()
        return pb.DeletePermissionResponse()

    def ListPermissions(self, request, context):
        runtime, caller = self._on(), current_identity()
        kind = parse_kind(request.resource_type) if request.resource_type else None
        grants = runtime.store.list_grants(
            kind, request.resource_id, request.username, request.role
        )
        if not runtime.access.is_admin(caller):
            # Grants to the caller, and grants on what the caller manages.
            grants = [
                g
                for g in grants
                if g.username == caller.subject
                or runtime.access.level(caller, g.kind, g.resource_id) >= Permission.MANAGE
            ]
        return pb.ListPermissionsResponse(permissions=[_grant_pb(g) for g in grants])

    def SetDefaultPermission(self, request, context):
        runtime, _ = self._admin("SetDefaultPermission")
        runtime.store.set_default(parse_permission(request.permission), request.username)
        runtime.changed()
        return pb.SetDefaultPermissionResponse()

    def GetDefaultPermission(self, request, context):
        runtime, target = self._self_or_admin(request.username, "GetDefaultPermission")
        if not request.username:
            return pb.GetDefaultPermissionResponse(permission=runtime.store.global_default().name)
        user = runtime.store.get_user(target)
        level = user.default_permission or runtime.store.global_default()
        return pb.GetDefaultPermissionResponse(permission=level.name)

    # -- workspaces --------------------------------------------------------------------------

    def CreateWorkspace(self, request, context):
        runtime, _ = self._admin("CreateWorkspace")
        runtime.store.create_workspace(request.name)
        runtime.changed()
        return pb.CreateWorkspaceResponse(workspace=pb.Workspace(name=request.name))

    def DeleteWorkspace(self, request, context):
        runtime, _ = self._admin("DeleteWorkspace")
        runtime.store.delete_workspace(request.name)
        runtime.changed()
        return pb.DeleteWorkspaceResponse()

    def ListWorkspaces(self, request, context):
        runtime, caller = self._on(), current_identity()
        spaces = runtime.store.list_workspaces()
        if not runtime.access.is_admin(caller):
            mine = set(runtime.access.view(caller).memberships)
            spaces = [s for s in spaces if s[0] in mine]
        return pb.ListWorkspacesResponse(
            workspaces=[
                pb.Workspace(
                    name=name,
                    members=[pb.WorkspaceMember(username=u, permission=p.name) for u, p in members],
                )
                for name, members in spaces
            ]
        )

    def AddWorkspaceMember(self, request, context):
        runtime, _ = self._admin("AddWorkspaceMember")
        level = parse_permission(request.permission or "READ")
        if level is Permission.NO_PERMISSIONS:
            raise InvalidParameterValue(
                "a member needs READ, USE, EDIT or MANAGE; remove it instead"
            )
        runtime.store.set_workspace_member(request.workspace, request.username, level)
        runtime.changed()
        return pb.AddWorkspaceMemberResponse()

    def RemoveWorkspaceMember(self, request, context):
        runtime, _ = self._admin("RemoveWorkspaceMember")
        runtime.store.set_workspace_member(request.workspace, request.username, None)
        runtime.changed()
        return pb.RemoveWorkspaceMemberResponse()
