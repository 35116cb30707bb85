"""Access tokens confined to one experiment: a project run's own token.

Revision ID: a0003_token_scope
Revises: a0002_role_groups
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "a0003_token_scope"
down_revision = "a0002_role_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "": an ordinary token (its owner's rights); else the experiment id a run's token may
    # work in (services/common/auth/run_tokens.py says what it may do).
    with op.batch_alter_table("auth_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(256), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("auth_tokens") as batch:
        batch.drop_column("scope")
