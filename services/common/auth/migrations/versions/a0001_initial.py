"""Auth tables: users, tokens, roles, grants, workspaces and settings.

Revision ID: a0001_initial
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from mlgrid_services.common.sql_dialect import table_options

revision = "a0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    options = table_options(op.get_bind())
    op.create_table(
        "auth_users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("password_hash", sa.String(512), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("default_permission", sa.String(32), nullable=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("username", name="uq_auth_users_username"),
        **options,
    )
    op.create_table(
        "auth_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("expiration_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_auth_tokens_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_users.id"], ondelete="CASCADE", name="fk_auth_tokens_user"
        ),
        **options,
    )
    op.create_table(
        "auth_roles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.UniqueConstraint("name", name="uq_auth_roles_name"),
        **options,
    )
    op.create_table(
        "auth_role_members",
        sa.Column("role_id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.ForeignKeyConstraint(
            ["role_id"], ["auth_roles.id"], ondelete="CASCADE", name="fk_auth_rm_role"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_users.id"], ondelete="CASCADE", name="fk_auth_rm_user"
        ),
        **options,
    )
    op.create_table(
        "auth_grants",
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(256), primary_key=True),
        sa.Column("principal_type", sa.String(8), primary_key=True),
        sa.Column("principal_id", sa.Integer, primary_key=True),
        sa.Column("permission", sa.String(32), nullable=False),
        **options,
    )
    op.create_index("ix_auth_grants_principal", "auth_grants", ["principal_type", "principal_id"])
    op.create_table(
        "auth_workspaces",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("name", name="uq_auth_workspaces_name"),
        **options,
    )
    op.create_table(
        "auth_workspace_members",
        sa.Column("workspace_id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("permission", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["auth_workspaces.id"], ondelete="CASCADE", name="fk_auth_wm_ws"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_users.id"], ondelete="CASCADE", name="fk_auth_wm_user"
        ),
        **options,
    )
    op.create_table(
        "auth_resource_workspaces",
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(256), primary_key=True),
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["auth_workspaces.id"], ondelete="CASCADE", name="fk_auth_rw_ws"
        ),
        **options,
    )
    op.create_table(
        "auth_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
        **options,
    )


def downgrade() -> None:
    for table in (
        "auth_settings",
        "auth_resource_workspaces",
        "auth_workspace_members",
        "auth_workspaces",
        "auth_grants",
        "auth_role_members",
        "auth_roles",
        "auth_tokens",
        "auth_users",
    ):
        op.drop_table(table)
