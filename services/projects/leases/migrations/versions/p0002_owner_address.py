"""Leases say where their owner serves (host:port), so another replica can relay a run's log
stream from it.

Revision ID: p0002_owner_address
Revises: p0001_run_leases
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "p0002_owner_address"
down_revision = "p0001_run_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mlgrid_project_leases") as batch:
        batch.add_column(sa.Column("owner_address", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mlgrid_project_leases") as batch:
        batch.drop_column("owner_address")
