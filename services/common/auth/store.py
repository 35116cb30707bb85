"""The auth store: users, access tokens, roles, grants, workspaces and the default permission,
in SQL (SQLite or PostgreSQL; the schema's migrations run on open, version table
``alembic_version_auth``, so it can share a database with tracking and registry).

Every write is one transaction; every method that changes something returns only after it is
committed. Reads used on the per-call path (:meth:`AuthStore.subject_view`,
:meth:`AuthStore.resource_workspace`) are single round trips; their callers cache them
(access.py).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist

from ..sql import make_engine, upgrade_database, write_transaction
from ..sql_dialect import upsert
from . import schema
from .passwords import hash_password, new_token, token_hash, verify_password
from .permissions import Permission, ResourceKind, parse_permission

VERSION_TABLE = "alembic_version_auth"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The workspace every resource belongs to until placed elsewhere; every user is its member.
DEFAULT_WORKSPACE = "default"
#: The default permission of a fresh store, as MLflow's basic-auth app ships.
INITIAL_DEFAULT = Permission.READ
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,256}$")
MIN_PASSWORD_CHARS = 8
_USER, _ROLE = "user", "role"


def _now_ms() -> int:
    return int(time.time() * 1000)


def check_group(value: str) -> str:
    """A group as identity providers name them (Keycloak's are paths such as ``/ml/team``):
    1 to 256 printable characters."""
    if not value or len(value) > 256 or not value.isprintable():
        raise InvalidParameterValue(
            f"group {value[:60]!r} is not valid: use 1 to 256 printable characters, exactly as "
            "the identity provider's tokens list it"
        )
    return value


def check_name(value: str, field: str) -> str:
    if not _NAME.match(value or ""):
        raise InvalidParameterValue(
            f"{field} {value[:60]!r} is not valid: use 1 to 256 letters, digits and . _ @ + -"
        )
    return value


@dataclass(frozen=True)
class RoleRecord:
    name: str
    description: str
    members: list[str]
    #: Identity-provider groups whose members have the role.
    groups: list[str]


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    is_admin: bool
    creation_time: int
    default_permission: Permission | None = None
    roles: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    name: str
    username: str
    creation_time: int
    expiration_time: int
    #: "" for an ordinary token; the experiment id a project run's token is confined to.
    scope: str = ""


@dataclass(frozen=True)
class GrantRecord:
    kind: ResourceKind
    resource_id: str
    username: str
    role: str
    permission: Permission


@dataclass(frozen=True)
class SubjectView:
    """What decides a user's permissions, read in one go and cached per call path."""

    user: UserRecord
    #: (kind, resource id) -> the best of the user's own and its roles' grants.
    grants: dict[tuple[ResourceKind, str], Permission]
    #: workspace -> the user's permission on its resources (the default workspace included).
    memberships: dict[str, Permission]
    #: The user's default permission (its own, else the global one).
    default: Permission
    #: Grants made to the user itself (they win over role grants, so NO_PERMISSIONS can deny).
    own: dict[tuple[ResourceKind, str], Permission] = field(default_factory=dict)


class AuthStore:
    """Users, tokens, roles, grants and workspaces in one SQL database."""

    def __init__(self, uri: str, *, pool_size: int = 2) -> None:
        self.engine = make_engine(uri, pool_size=pool_size, max_overflow=4)
        upgrade_database(self.engine, MIGRATIONS, VERSION_TABLE)
        self._dialect = self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ users

    def create_user(self, username: str, password: str, is_admin: bool = False) -> UserRecord:
        check_name(username, "username")
        if len(password) < MIN_PASSWORD_CHARS:
            raise InvalidParameterValue(
                f"password has {len(password)} characters; at least {MIN_PASSWORD_CHARS} needed"
            )
        created = _now_ms()
        hashed = hash_password(password)
        try:
            with write_transaction(self.engine) as conn:
                result = conn.execute(
                    schema.users.insert().values(
                        username=username,
                        password_hash=hashed,
                        is_admin=is_admin,
                        creation_time=created,
                    )
                )
                user_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            raise ResourceAlreadyExists(f"user {username!r} already exists") from None
        return UserRecord(user_id, username, is_admin, created)

    def get_user(self, username: str) -> UserRecord:
        with self.engine.connect() as conn:
            return self._user(conn, username)

    def _user_row(self, conn: sa.Connection, username: str) -> sa.Row:
        row = conn.execute(
            sa.select(schema.users).where(schema.users.c.username == username)
        ).one_or_none()
        if row is None:
            raise ResourceDoesNotExist(f"user {username[:256]!r} does not exist")
        return row

    def _user(self, conn: sa.Connection, username: str) -> UserRecord:
        row = self._user_row(conn, username)
        roles = conn.execute(
            sa.select(schema.roles.c.name)
            .join(schema.role_members, schema.role_members.c.role_id == schema.roles.c.id)
            .where(schema.role_members.c.user_id == row.id)
            .order_by(schema.roles.c.name)
        ).scalars()
        spaces = conn.execute(
            sa.select(schema.workspaces.c.name)
            .join(
                schema.workspace_members,
                schema.workspace_members.c.workspace_id == schema.workspaces.c.id,
            )
            .where(schema.workspace_members.c.user_id == row.id)
            .order_by(schema.workspaces.c.name)
        ).scalars()
        return UserRecord(
            row.id,
            row.username,
            bool(row.is_admin),
            row.creation_time,
            Permission[row.default_permission] if row.default_permission else None,
            tuple(roles),
            (DEFAULT_WORKSPACE, *spaces),
        )

    def list_users(self, offset: int, limit: int) -> list[UserRecord]:
        with self.engine.connect() as conn:
            names = conn.execute(
                sa.select(schema.users.c.username)
                .order_by(schema.users.c.username)
                .offset(offset)
                .limit(limit)
            ).scalars()
            return [self._user(conn, name) for name in list(names)]

    def update_user(
        self, username: str, password: str | None = None, is_admin: bool | None = None
    ) -> UserRecord:
        values: dict[str, object] = {}
        if password is not None:
            if len(password) < MIN_PASSWORD_CHARS:
                raise InvalidParameterValue(
                    f"password has {len(password)} characters; at least {MIN_PASSWORD_CHARS} needed"
                )
            values["password_hash"] = hash_password(password)
        if is_admin is not None:
            values["is_admin"] = is_admin
        with write_transaction(self.engine) as conn:
            row = self._user_row(conn, username)
            if values:
                conn.execute(
                    schema.users.update().where(schema.users.c.id == row.id).values(**values)
                )
            return self._user(conn, username)

    def delete_user(self, username: str) -> None:
        """The user goes with its tokens, memberships and grants (one transaction)."""
        with write_transaction(self.engine) as conn:
            row = self._user_row(conn, username)
            self._delete_principal(conn, _USER, row.id)
            for table in (schema.tokens, schema.role_members, schema.workspace_members):
                conn.execute(table.delete().where(table.c.user_id == row.id))
            conn.execute(schema.users.delete().where(schema.users.c.id == row.id))

    @staticmethod
    def _delete_principal(conn: sa.Connection, kind: str, principal_id: int) -> None:
        conn.execute(
            schema.grants.delete().where(
                schema.grants.c.principal_type == kind, schema.grants.c.principal_id == principal_id
            )
        )

    def check_password(self, username: str, password: str) -> UserRecord | None:
        """The user when ``password`` is theirs; None otherwise (no hint which part failed)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.users).where(schema.users.c.username == username)
            ).one_or_none()
        if row is None or not verify_password(password, row.password_hash):
            return None
        return UserRecord(row.id, row.username, bool(row.is_admin), row.creation_time)

    def password_record(self, username: str) -> tuple[UserRecord, str] | None:
        """The user and its stored password hash, or None (one indexed read)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.users).where(schema.users.c.username == username)
            ).one_or_none()
        if row is None:
            return None
        record = UserRecord(row.id, row.username, bool(row.is_admin), row.creation_time)
        return record, str(row.password_hash)

    def ensure_external_user(self, username: str) -> None:
        """A user an identity provider vouches for gets a record (so grants can name it) whose
        password matches nothing: it signs in through the provider only."""
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    schema.users.insert().values(
                        username=username,
                        password_hash="external",
                        is_admin=False,
                        creation_time=_now_ms(),
                    )
                )
        except IntegrityError:
            pass  # known already (or created by another process just now)

    def has_users(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(schema.users.c.id).limit(1)).first() is not None

    # ----------------------------------------------------------------- tokens

    def create_token(
        self, username: str, name: str, expires_in_seconds: int, scope: str = ""
    ) -> tuple[TokenRecord, str]:
        """A new token of ``username`` and its secret; ``scope`` confines it (run_tokens.py)."""
        if not name or len(name) > 256:
            raise InvalidParameterValue("name must have 1 to 256 characters")
        if expires_in_seconds < 0:
            raise InvalidParameterValue(
                f"expires_in_seconds is {expires_in_seconds}; use 0 (never) or a positive number"
            )
        token = new_token()
        created = _now_ms()
        expires = created + expires_in_seconds * 1000 if expires_in_seconds else 0
        token_id = secrets.token_hex(8)
        with write_transaction(self.engine) as conn:
            row = self._user_row(conn, username)
            conn.execute(
                schema.tokens.insert().values(
                    token_id=token_id,
                    token_hash=token_hash(token),
                    user_id=row.id,
                    name=name,
                    creation_time=created,
                    expiration_time=expires,
                    scope=scope,
                )
            )
        return TokenRecord(token_id, name, username, created, expires, scope), token

    def list_tokens(self, username: str) -> list[TokenRecord]:
        with self.engine.connect() as conn:
            row = self._user_row(conn, username)
            rows = conn.execute(
                sa.select(schema.tokens)
                .where(schema.tokens.c.user_id == row.id)
                .order_by(schema.tokens.c.creation_time.desc())
            ).all()
        return [
            TokenRecord(r.token_id, r.name, username, r.creation_time, r.expiration_time, r.scope)
            for r in rows
        ]

    def token_owner(self, token_id: str) -> str:
        with self.engine.connect() as conn:
            owner = conn.execute(
                sa.select(schema.users.c.username)
                .join(schema.tokens, schema.tokens.c.user_id == schema.users.c.id)
                .where(schema.tokens.c.token_id == token_id)
            ).scalar_one_or_none()
        if owner is None:
            raise ResourceDoesNotExist(f"access token {token_id[:64]!r} does not exist")
        return str(owner)

    def revoke_token(self, token_id: str) -> None:
        with write_transaction(self.engine) as conn:
            deleted = conn.execute(
                schema.tokens.delete().where(schema.tokens.c.token_id == token_id)
            ).rowcount
        if not deleted:
            raise ResourceDoesNotExist(f"access token {token_id[:64]!r} does not exist")

    def revoke_tokens_named(self, name: str) -> int:
        """Removes every confined token (a project run's) called ``name``, whoever owns it; how
        many there were. A user's own token that happens to bear the name is left alone."""
        with write_transaction(self.engine) as conn:
            return int(
                conn.execute(
                    schema.tokens.delete().where(
                        schema.tokens.c.name == name, schema.tokens.c.scope != ""
                    )
                ).rowcount
            )

    def revoke_user_tokens_named(self, username: str, name: str) -> int:
        """Removes ``username``'s tokens called ``name``; ResourceDoesNotExist when it has none
        (names need not be unique: every token of that name goes)."""
        with write_transaction(self.engine) as conn:
            user_id = self._user_row(conn, username).id
            deleted = int(
                conn.execute(
                    schema.tokens.delete().where(
                        schema.tokens.c.user_id == user_id, schema.tokens.c.name == name
                    )
                ).rowcount
            )
        if not deleted:
            raise ResourceDoesNotExist(
                f"user {username[:256]!r} has no access token named {name[:256]!r}"
            )
        return deleted

    def user_for_token(self, token: str) -> UserRecord | None:
        """The owner of ``token`` when it exists and has not expired."""
        found = self.token_holder(token)
        return None if found is None else found[0]

    def token_holder(self, token: str) -> tuple[UserRecord, str] | None:
        """The owner of ``token`` and the token's scope ("" unless it is a project run's), when
        it exists and has not expired."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.users, schema.tokens.c.expiration_time, schema.tokens.c.scope)
                .join(schema.tokens, schema.tokens.c.user_id == schema.users.c.id)
                .where(schema.tokens.c.token_hash == token_hash(token))
            ).one_or_none()
        if row is None or (row.expiration_time and row.expiration_time <= _now_ms()):
            return None
        user = UserRecord(row.id, row.username, bool(row.is_admin), row.creation_time)
        return user, str(row.scope or "")

    # ------------------------------------------------------------------ roles

    def create_role(self, name: str, description: str) -> None:
        check_name(name, "role name")
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(schema.roles.insert().values(name=name, description=description))
        except IntegrityError:
            raise ResourceAlreadyExists(f"role {name!r} already exists") from None

    def _role_id(self, conn: sa.Connection, name: str) -> int:
        role_id = conn.execute(
            sa.select(schema.roles.c.id).where(schema.roles.c.name == name)
        ).scalar_one_or_none()
        if role_id is None:
            raise ResourceDoesNotExist(f"role {name[:256]!r} does not exist")
        return int(role_id)

    def delete_role(self, name: str) -> None:
        with write_transaction(self.engine) as conn:
            role_id = self._role_id(conn, name)
            self._delete_principal(conn, _ROLE, role_id)
            for table in (schema.role_members, schema.role_groups):
                conn.execute(table.delete().where(table.c.role_id == role_id))
            conn.execute(schema.roles.delete().where(schema.roles.c.id == role_id))

    def list_roles(self) -> list[RoleRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(schema.roles).order_by(schema.roles.c.name)).all()
            members = conn.execute(
                sa.select(schema.role_members.c.role_id, schema.users.c.username)
                .join(schema.users, schema.users.c.id == schema.role_members.c.user_id)
                .order_by(schema.users.c.username)
            ).all()
            groups = conn.execute(
                sa.select(schema.role_groups).order_by(schema.role_groups.c.group_name)
            ).all()
        by_role: dict[int, list[str]] = {}
        for member in members:
            by_role.setdefault(member.role_id, []).append(member.username)
        groups_of: dict[int, list[str]] = {}
        for group in groups:
            groups_of.setdefault(group.role_id, []).append(group.group_name)
        return [
            RoleRecord(r.name, r.description, by_role.get(r.id, []), groups_of.get(r.id, []))
            for r in rows
        ]

    def set_role_group(self, role: str, group: str, linked: bool) -> None:
        """Gives ``role`` to the members of the identity provider's ``group`` (or stops)."""
        check_group(group)
        with write_transaction(self.engine) as conn:
            role_id = self._role_id(conn, role)
            table = schema.role_groups
            conn.execute(
                table.delete().where(table.c.role_id == role_id, table.c.group_name == group)
            )
            if linked:
                conn.execute(table.insert().values(role_id=role_id, group_name=group))

    def linked_groups(self) -> frozenset[str]:
        """Every group some role is given to (the only groups worth carrying with a caller)."""
        with self.engine.connect() as conn:
            return frozenset(
                conn.execute(sa.select(schema.role_groups.c.group_name).distinct()).scalars()
            )

    def set_role_member(self, role: str, username: str, member: bool) -> None:
        with write_transaction(self.engine) as conn:
            role_id = self._role_id(conn, role)
            user_id = self._user_row(conn, username).id
            table = schema.role_members
            conn.execute(
                table.delete().where(table.c.role_id == role_id, table.c.user_id == user_id)
            )
            if member:
                conn.execute(table.insert().values(role_id=role_id, user_id=user_id))

    # ----------------------------------------------------------------- grants

    def _principal(self, conn: sa.Connection, username: str, role: str) -> tuple[str, int]:
        if bool(username) == bool(role):
            raise InvalidParameterValue("name exactly one of username and role")
        if username:
            return _USER, int(self._user_row(conn, username).id)
        return _ROLE, self._role_id(conn, role)

    def set_grant(
        self,
        kind: ResourceKind,
        resource_id: str,
        permission: Permission,
        *,
        username: str = "",
        role: str = "",
    ) -> None:
        if not resource_id:
            raise InvalidParameterValue("resource_id must name the resource")
        with write_transaction(self.engine) as conn:
            principal_type, principal_id = self._principal(conn, username, role)
            conn.execute(
                upsert(
                    self._dialect,
                    schema.grants,
                    ["resource_type", "resource_id", "principal_type", "principal_id"],
                    ["permission"],
                ).values(
                    resource_type=kind.value,
                    resource_id=resource_id,
                    principal_type=principal_type,
                    principal_id=principal_id,
                    permission=permission.name,
                )
            )

    def delete_grant(
        self, kind: ResourceKind, resource_id: str, *, username: str = "", role: str = ""
    ) -> None:
        with write_transaction(self.engine) as conn:
            principal_type, principal_id = self._principal(conn, username, role)
            g = schema.grants.c
            deleted = conn.execute(
                schema.grants.delete().where(
                    g.resource_type == kind.value,
                    g.resource_id == resource_id,
                    g.principal_type == principal_type,
                    g.principal_id == principal_id,
                )
            ).rowcount
        if not deleted:
            who = f"user {username!r}" if username else f"role {role!r}"
            raise ResourceDoesNotExist(f"{who} has no grant on {kind.shown} {resource_id[:256]!r}")

    def list_grants(
        self,
        kind: ResourceKind | None = None,
        resource_id: str = "",
        username: str = "",
        role: str = "",
    ) -> list[GrantRecord]:
        g = schema.grants.c
        users_q = sa.select(schema.users.c.id, schema.users.c.username)
        roles_q = sa.select(schema.roles.c.id, schema.roles.c.name)
        query = sa.select(schema.grants)
        if kind is not None:
            query = query.where(g.resource_type == kind.value)
        if resource_id:
            query = query.where(g.resource_id == resource_id)
        with self.engine.connect() as conn:
            if username:
                query = query.where(
                    g.principal_type == _USER, g.principal_id == self._user_row(conn, username).id
                )
            if role:
                query = query.where(
                    g.principal_type == _ROLE, g.principal_id == self._role_id(conn, role)
                )
            rows = conn.execute(query.order_by(g.resource_type, g.resource_id)).all()
            user_names = {r.id: r.username for r in conn.execute(users_q)}
            role_names = {r.id: r.name for r in conn.execute(roles_q)}
        return [
            GrantRecord(
                ResourceKind(r.resource_type),
                r.resource_id,
                user_names.get(r.principal_id, "") if r.principal_type == _USER else "",
                role_names.get(r.principal_id, "") if r.principal_type == _ROLE else "",
                Permission[r.permission],
            )
            for r in rows
        ]

    def move_grants(self, kind: ResourceKind, old_id: str, new_id: str) -> None:
        """A renamed resource keeps its grants and workspace (registered models are named)."""
        with write_transaction(self.engine) as conn:
            for table in (schema.grants, schema.resource_workspaces):
                conn.execute(
                    table.update()
                    .where(table.c.resource_type == kind.value, table.c.resource_id == old_id)
                    .values(resource_id=new_id)
                )

    def forget_resource(self, kind: ResourceKind, resource_id: str) -> None:
        """A deleted resource's grants and placement go (a new one of that name starts clean)."""
        with write_transaction(self.engine) as conn:
            for table in (schema.grants, schema.resource_workspaces):
                conn.execute(
                    table.delete().where(
                        table.c.resource_type == kind.value, table.c.resource_id == resource_id
                    )
                )

    # --------------------------------------------------------- default permission

    def set_default(self, permission: Permission, username: str = "") -> None:
        with write_transaction(self.engine) as conn:
            if username:
                row = self._user_row(conn, username)
                conn.execute(
                    schema.users.update()
                    .where(schema.users.c.id == row.id)
                    .values(default_permission=permission.name)
                )
                return
            conn.execute(
                upsert(self._dialect, schema.settings, ["key"], ["value"]).values(
                    key="default_permission", value=permission.name
                )
            )

    def ensure_default(self, permission: Permission) -> None:
        """Sets the global default only when none is stored yet (first start)."""
        with self.engine.connect() as conn:
            stored = conn.execute(
                sa.select(schema.settings.c.value).where(
                    schema.settings.c.key == "default_permission"
                )
            ).scalar_one_or_none()
        if stored is None:
            self.set_default(permission)

    def global_default(self, conn: sa.Connection | None = None) -> Permission:
        if conn is None:
            with self.engine.connect() as own:
                return self.global_default(own)
        stored = conn.execute(
            sa.select(schema.settings.c.value).where(schema.settings.c.key == "default_permission")
        ).scalar_one_or_none()
        return Permission[stored] if stored else INITIAL_DEFAULT

    # -------------------------------------------------------------- workspaces

    def create_workspace(self, name: str) -> None:
        check_name(name, "workspace name")
        if name == DEFAULT_WORKSPACE:
            raise ResourceAlreadyExists(f"workspace {name!r} always exists")
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(schema.workspaces.insert().values(name=name, creation_time=_now_ms()))
        except IntegrityError:
            raise ResourceAlreadyExists(f"workspace {name!r} already exists") from None

    def _workspace_id(self, conn: sa.Connection, name: str) -> int:
        found = conn.execute(
            sa.select(schema.workspaces.c.id).where(schema.workspaces.c.name == name)
        ).scalar_one_or_none()
        if found is None:
            raise ResourceDoesNotExist(f"workspace {name[:256]!r} does not exist")
        return int(found)

    def delete_workspace(self, name: str) -> None:
        """Its members leave and its resources return to the default workspace."""
        with write_transaction(self.engine) as conn:
            ws = self._workspace_id(conn, name)
            for table in (schema.workspace_members, schema.resource_workspaces):
                conn.execute(table.delete().where(table.c.workspace_id == ws))
            conn.execute(schema.workspaces.delete().where(schema.workspaces.c.id == ws))

    def has_workspaces(self) -> bool:
        """Whether any workspace besides the default one exists (one indexed read: the
        per-call path asks this every few seconds; list_workspaces reads every member)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(schema.workspaces.c.id).limit(1)).first() is not None

    def list_workspaces(self) -> list[tuple[str, list[tuple[str, Permission]]]]:
        with self.engine.connect() as conn:
            spaces = conn.execute(
                sa.select(schema.workspaces.c.id, schema.workspaces.c.name).order_by(
                    schema.workspaces.c.name
                )
            ).all()
            members = conn.execute(
                sa.select(
                    schema.workspace_members.c.workspace_id,
                    schema.users.c.username,
                    schema.workspace_members.c.permission,
                )
                .join(schema.users, schema.users.c.id == schema.workspace_members.c.user_id)
                .order_by(schema.users.c.username)
            ).all()
        by_space: dict[int, list[tuple[str, Permission]]] = {}
        for m in members:
            by_space.setdefault(m.workspace_id, []).append((m.username, Permission[m.permission]))
        return [(s.name, by_space.get(s.id, [])) for s in spaces]

    def set_workspace_member(
        self, workspace: str, username: str, permission: Permission | None
    ) -> None:
        """Adds (or changes) a member; ``permission`` None removes it."""
        if workspace == DEFAULT_WORKSPACE:
            raise InvalidParameterValue(
                f"every user belongs to workspace {DEFAULT_WORKSPACE!r}; use the default "
                "permission to change what they may do there"
            )
        with write_transaction(self.engine) as conn:
            ws = self._workspace_id(conn, workspace)
            user_id = self._user_row(conn, username).id
            table = schema.workspace_members
            removed = conn.execute(
                table.delete().where(table.c.workspace_id == ws, table.c.user_id == user_id)
            ).rowcount
            if permission is None:
                if not removed:
                    raise ResourceDoesNotExist(
                        f"user {username!r} is not a member of workspace {workspace!r}"
                    )
                return
            conn.execute(
                table.insert().values(workspace_id=ws, user_id=user_id, permission=permission.name)
            )

    def place_resource(self, kind: ResourceKind, resource_id: str, workspace: str) -> None:
        """Records that a new resource lives in ``workspace`` (the default needs no row)."""
        if workspace == DEFAULT_WORKSPACE:
            return
        with write_transaction(self.engine) as conn:
            ws = self._workspace_id(conn, workspace)
            conn.execute(
                upsert(
                    self._dialect,
                    schema.resource_workspaces,
                    ["resource_type", "resource_id"],
                    ["workspace_id"],
                ).values(resource_type=kind.value, resource_id=resource_id, workspace_id=ws)
            )

    def resource_workspaces(
        self, kind: ResourceKind, resource_ids: Iterable[str]
    ) -> dict[str, str]:
        """resource id -> workspace, for those placed outside the default workspace."""
        ids = list(resource_ids)
        if not ids:
            return {}
        rw = schema.resource_workspaces
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(rw.c.resource_id, schema.workspaces.c.name)
                .join(schema.workspaces, schema.workspaces.c.id == rw.c.workspace_id)
                .where(rw.c.resource_type == kind.value, rw.c.resource_id.in_(ids))
            ).all()
        return {r.resource_id: r.name for r in rows}

    # --------------------------------------------------------- the per-call read

    def subject_view(self, username: str, groups: tuple[str, ...] = ()) -> SubjectView | None:
        """Everything that decides ``username``'s permissions, as a member of the roles given to
        its identity provider's ``groups`` too; None when the user is gone."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.users).where(schema.users.c.username == username)
            ).one_or_none()
            if row is None:
                return None
            role_ids = list(
                conn.execute(
                    sa.select(schema.role_members.c.role_id).where(
                        schema.role_members.c.user_id == row.id
                    )
                ).scalars()
            )
            if groups:
                rg = schema.role_groups.c
                role_ids += conn.execute(
                    sa.select(rg.role_id).where(rg.group_name.in_(groups))
                ).scalars()
            g = schema.grants.c
            principal = sa.and_(g.principal_type == _USER, g.principal_id == row.id)
            if role_ids:
                principal = sa.or_(
                    principal, sa.and_(g.principal_type == _ROLE, g.principal_id.in_(role_ids))
                )
            grant_rows = conn.execute(
                sa.select(g.resource_type, g.resource_id, g.principal_type, g.permission).where(
                    principal
                )
            ).all()
            member_rows = conn.execute(
                sa.select(schema.workspaces.c.name, schema.workspace_members.c.permission)
                .join(
                    schema.workspace_members,
                    schema.workspace_members.c.workspace_id == schema.workspaces.c.id,
                )
                .where(schema.workspace_members.c.user_id == row.id)
            ).all()
            global_default = self.global_default(conn)
        default = Permission[row.default_permission] if row.default_permission else global_default
        grants: dict[tuple[ResourceKind, str], Permission] = {}
        own: dict[tuple[ResourceKind, str], Permission] = {}
        for r in grant_rows:
            key = (ResourceKind(r.resource_type), r.resource_id)
            level = Permission[r.permission]
            if r.principal_type == _USER:
                own[key] = level
            grants[key] = max(grants.get(key, Permission.NO_PERMISSIONS), level)
        memberships = {DEFAULT_WORKSPACE: default}
        memberships.update({m.name: Permission[m.permission] for m in member_rows})
        user = UserRecord(
            row.id,
            row.username,
            bool(row.is_admin),
            row.creation_time,
            workspaces=tuple(sorted(memberships)),
        )
        return SubjectView(user, grants, memberships, default, own)


__all__ = ["DEFAULT_WORKSPACE", "AuthStore", "SubjectView", "parse_permission"]
