"""Who may do what on which resource: grants, roles, workspaces and defaults, decided per call
from a briefly cached picture of the caller (one store read per caller every few seconds).

A caller's level on a resource:

1. an admin (or an mlgrid service) has MANAGE on everything;
2. a resource lives in a workspace (the default one unless placed elsewhere); a caller who is not
   a member of it has NO_PERMISSIONS there, whatever else it was granted;
3. a grant to the caller itself decides (NO_PERMISSIONS included, so it can deny);
4. else the best grant to one of its roles;
5. else its permission in the resource's workspace (in the default workspace: its default
   permission, its own if set, else the deployment's).

Changes made through this process's AuthService are seen at once here (caches dropped); other
processes see them within ``cache_seconds`` (concurrent calls that find an entry stale share
one read of it, ttl_cache.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from mlgrid.exceptions import PermissionDenied, Unauthenticated

from .identity import Identity
from .permissions import Permission, ResourceKind
from .policy import UNOWNED
from .run_tokens import scoped_level
from .store import DEFAULT_WORKSPACE, AuthStore, SubjectView, UserRecord
from .ttl_cache import TtlCache

_CACHE_LIMIT = 50_000


class AccessControl:
    """Permission decisions over one auth store."""

    def __init__(self, store: AuthStore, cache_seconds: float = 2.0) -> None:
        self.store = store
        #: (subject, its groups) -> its view (None: no such user).
        self._views: TtlCache[tuple[str, tuple[str, ...]], SubjectView | None] = TtlCache(
            cache_seconds, _CACHE_LIMIT
        )
        #: (kind, resource id) -> the workspace it lives in.
        self._placed: TtlCache[tuple[ResourceKind, str], str] = TtlCache(
            cache_seconds, _CACHE_LIMIT
        )
        #: Whether any workspace besides the default one exists (one entry).
        self._any_workspace: TtlCache[str, bool] = TtlCache(cache_seconds, 1)

    def invalidate(self) -> None:
        """Forgets everything cached (after a change made through this process)."""
        self._views.clear()
        self._placed.clear()
        self._any_workspace.clear()

    # ------------------------------------------------------------------ pictures

    def view(self, identity: Identity) -> SubjectView:
        """The caller's grants and memberships; Unauthenticated when the user is gone."""
        view = self._views.get(
            (identity.subject, identity.groups),
            lambda _stale: self.store.subject_view(identity.subject, identity.groups),
        )
        if view is None:
            if identity.method == "oidc":
                return self._outside_view(identity)
            raise Unauthenticated(f"user {identity.subject!r} no longer exists")
        return view

    def _outside_view(self, identity: Identity) -> SubjectView:
        """An identity provider's user that the store has no record of: defaults only."""
        default = self.store.global_default()
        user = UserRecord(0, identity.subject, False, 0, workspaces=(DEFAULT_WORKSPACE,))
        return SubjectView(user, {}, {DEFAULT_WORKSPACE: default}, default)

    def _workspaces_exist(self) -> bool:
        return self._any_workspace.get("", lambda _stale: self.store.has_workspaces())

    def workspace_of(self, kind: ResourceKind, resource_id: str) -> str:
        if not self._workspaces_exist():
            return DEFAULT_WORKSPACE

        def read(_stale: str | None) -> str:
            found = self.store.resource_workspaces(kind, [resource_id]).get(resource_id)
            return found or DEFAULT_WORKSPACE

        return self._placed.get((kind, resource_id), read)

    # ----------------------------------------------------------------- decisions

    def _owner_is_admin(self, identity: Identity) -> bool:
        if identity.is_service or identity.method == "open":
            return True
        return self.view(identity).user.is_admin

    def is_admin(self, identity: Identity) -> bool:
        # A project run's token never acts as an admin, even an admin's (run_tokens.py).
        return self._owner_is_admin(identity) and not identity.scope

    def level(self, identity: Identity, kind: ResourceKind, resource_id: str) -> Permission:
        if self._owner_is_admin(identity):
            level = Permission.MANAGE
        else:
            view = self.view(identity)
            level = self._level(view, kind, resource_id, self.workspace_of(kind, resource_id))
        return scoped_level(identity, kind, resource_id, level)

    @staticmethod
    def _level(
        view: SubjectView, kind: ResourceKind, resource_id: str, workspace: str
    ) -> Permission:
        member = view.memberships.get(workspace)
        if member is None:
            return Permission.NO_PERMISSIONS
        key = (kind, resource_id)
        own = view.own.get(key)
        if own is not None:
            return own
        granted = view.grants.get(key)
        if granted is not None:
            return granted
        return member

    def require(
        self,
        identity: Identity,
        kind: ResourceKind,
        resource_id: str,
        needed: Permission,
        action: str,
    ) -> None:
        """Raises PermissionDenied naming the resource and the permission ``action`` needs."""
        if resource_id == UNOWNED:
            self.require_admin(identity, f"{action} on a location outside every experiment")
            return
        level = self.level(identity, kind, resource_id)
        if not level.allows(needed):
            raise PermissionDenied(
                f"{action} needs {needed.name} on {kind.shown} {resource_id[:256]!r}; "
                f"user {identity.subject!r} has {level.name}"
            )

    def readable(
        self, identity: Identity, kind: ResourceKind, resource_ids: Iterable[str]
    ) -> set[str]:
        """The ids among ``resource_ids`` the caller may read (one store read for all)."""
        ids = set(resource_ids)
        # A run's token reads what its owner reads (run_tokens.py caps no READ).
        if self._owner_is_admin(identity):
            return ids
        view = self.view(identity)
        placed = self.store.resource_workspaces(kind, ids) if self._workspaces_exist() else {}
        return {
            rid
            for rid in ids
            if self._level(view, kind, rid, placed.get(rid, DEFAULT_WORKSPACE)).allows(
                Permission.READ
            )
        }

    def require_admin(self, identity: Identity, action: str) -> None:
        if not self.is_admin(identity):
            raise PermissionDenied(f"{action} needs an admin; user {identity.subject!r} is not one")

    def check_can_create(self, identity: Identity, workspace: str, what: str) -> None:
        """In the default workspace any authenticated user may create (as in MLflow, whatever
        its default permission); in another one, a member with EDIT. The workspace must exist
        (checked before anything is written)."""
        if workspace == DEFAULT_WORKSPACE:
            return
        if self.is_admin(identity):
            if workspace not in {name for name, _ in self.store.list_workspaces()}:
                raise PermissionDenied(f"workspace {workspace[:256]!r} does not exist")
            return
        member = self.view(identity).memberships.get(workspace)
        if member is None or not member.allows(Permission.EDIT):
            have = member.name if member is not None else "no membership"
            raise PermissionDenied(
                f"creating {what} in workspace {workspace[:256]!r} needs EDIT there; "
                f"user {identity.subject!r} has {have}"
            )

    def record_created(
        self, identity: Identity, kind: ResourceKind, resource_id: str, workspace: str
    ) -> None:
        """The creator gets MANAGE on what it made, which lives in ``workspace``."""
        self.store.place_resource(kind, resource_id, workspace)
        person = not identity.is_service and identity.method != "open" and identity.subject
        if person and self.store.password_record(identity.subject) is not None:
            self.store.set_grant(kind, resource_id, Permission.MANAGE, username=identity.subject)
        self.invalidate()
