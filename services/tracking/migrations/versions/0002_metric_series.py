"""Metric points carry their series number; the history index is (series, step, timestamp).

See mlgrid_services.tracking.store.series for why. Existing points get their series number from
the same function the store uses, one UPDATE per (run, key).

Revision ID: 0002_metric_series
Revises: 0001_initial
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from mlgrid_services.tracking.store.series import metric_series

revision = "0002_metric_series"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("metrics", sa.Column("series", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    # Core statements, not SQL text: "key" must be quoted on MySQL, where it is a reserved word.
    metrics = sa.table("metrics", sa.column("run_uuid"), sa.column("key"), sa.column("series"))
    pairs = conn.execute(sa.select(metrics.c.run_uuid, metrics.c.key).distinct()).all()
    if pairs:
        conn.execute(
            metrics.update()
            .where(metrics.c.run_uuid == sa.bindparam("run"), metrics.c.key == sa.bindparam("k"))
            .values(series=sa.bindparam("s")),
            [{"s": metric_series(run, key), "run": run, "k": key} for run, key in pairs],
        )
    op.drop_index("ix_metrics_history", table_name="metrics")
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("series", existing_type=sa.BigInteger(), nullable=False)
    op.create_index("ix_metrics_series", "metrics", ["series", "step", "timestamp"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_metrics_series", table_name="metrics")
    op.create_index(
        "ix_metrics_history", "metrics", ["run_uuid", "key", "step", "timestamp"], unique=False
    )
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("series")
