"""The auth store's tables (created by migrations/versions/a0001_initial.py).

Grants name their principal as (kind, id) so one table holds user and role grants; rows that
name a deleted user or role are removed in the same transaction as it (store.py).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "auth_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(256), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False),
    # The user's own default permission; NULL: the global one.
    sa.Column("default_permission", sa.String(32), nullable=True),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
)

tokens = sa.Table(
    "auth_tokens",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("auth_users.id", ondelete="CASCADE")),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    # 0: never expires.
    sa.Column("expiration_time", sa.BigInteger, nullable=False),
    # "": the owner's rights; else the experiment a project run's token is confined to
    # (run_tokens.py).
    sa.Column("scope", sa.String(256), nullable=False, server_default=""),
)

roles = sa.Table(
    "auth_roles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
)

role_members = sa.Table(
    "auth_role_members",
    metadata,
    sa.Column(
        "role_id", sa.Integer, sa.ForeignKey("auth_roles.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("auth_users.id", ondelete="CASCADE"), primary_key=True
    ),
)

#: Identity-provider groups whose members have a role (while their token lists the group).
role_groups = sa.Table(
    "auth_role_groups",
    metadata,
    sa.Column(
        "role_id", sa.Integer, sa.ForeignKey("auth_roles.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("group_name", sa.String(256), primary_key=True),
)

grants = sa.Table(
    "auth_grants",
    metadata,
    sa.Column("resource_type", sa.String(32), primary_key=True),
    sa.Column("resource_id", sa.String(256), primary_key=True),
    # "user" or "role".
    sa.Column("principal_type", sa.String(8), primary_key=True),
    sa.Column("principal_id", sa.Integer, primary_key=True),
    sa.Column("permission", sa.String(32), nullable=False),
)

workspaces = sa.Table(
    "auth_workspaces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
)

workspace_members = sa.Table(
    "auth_workspace_members",
    metadata,
    sa.Column(
        "workspace_id",
        sa.Integer,
        sa.ForeignKey("auth_workspaces.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("auth_users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("permission", sa.String(32), nullable=False),
)

#: Which workspace a resource lives in; a resource without a row lives in the default one.
resource_workspaces = sa.Table(
    "auth_resource_workspaces",
    metadata,
    sa.Column("resource_type", sa.String(32), primary_key=True),
    sa.Column("resource_id", sa.String(256), primary_key=True),
    sa.Column(
        "workspace_id",
        sa.Integer,
        sa.ForeignKey("auth_workspaces.id", ondelete="CASCADE"),
        nullable=False,
    ),
)

#: Deployment-wide settings: the default permission.
settings = sa.Table(
    "auth_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
