"""Roles given to the members of identity-provider groups.

Revision ID: a0002_role_groups
Revises: a0001_initial
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from mlgrid_services.common.sql_dialect import table_options

revision = "a0002_role_groups"
down_revision = "a0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_role_groups",
        sa.Column("role_id", sa.Integer, primary_key=True),
        sa.Column("group_name", sa.String(256), primary_key=True),
        sa.ForeignKeyConstraint(
            ["role_id"], ["auth_roles.id"], ondelete="CASCADE", name="fk_auth_rg_role"
        ),
        **table_options(op.get_bind()),
    )


def downgrade() -> None:
    op.drop_table("auth_role_groups")
