"""The run-lease table of the projects service (see leases/schema.py).

Revision ID: p0001_run_leases
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "p0001_run_leases"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlgrid_project_leases",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("owner_host", sa.String(255), nullable=False),
        sa.Column("owner_pid", sa.Integer, nullable=False),
        sa.Column("owner_start", sa.String(64), nullable=True),
        sa.Column("backend", sa.String(200), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    op.create_index("ix_mlgrid_project_leases_owner", "mlgrid_project_leases", ["owner"])
    op.create_index("ix_mlgrid_project_leases_expires", "mlgrid_project_leases", ["expires_ms"])


def downgrade() -> None:
    op.drop_table("mlgrid_project_leases")
