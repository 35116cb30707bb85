"""Model versions remember the MLflow 3 logged model they were made from (``logged_model_id``,
'' for versions registered before, or from a run or a path).

Revision ID: r0003_logged_model_id
Revises: r0002_change_notify
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "r0003_logged_model_id"
down_revision = "r0002_change_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column("logged_model_id", sa.String(length=36), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("logged_model_id")
