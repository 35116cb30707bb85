"""Each metric point is stored once per run: a unique index over the whole point.

MLflow keeps one row per (run, key, value, timestamp, step), so a client that retries a call it
thinks failed does not double-count. The unique index ``uq_metrics_point`` (series, step,
timestamp, value, is_nan, run_uuid, key) replaces the history index ``ix_metrics_series``: it
starts with the same columns, so history reads use it as before, and the store writes points
with insert-ignore semantics. Duplicates already stored are removed first (one row of each kept).

Revision ID: 0003_metric_points_once
Revises: 0002_metric_series
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_metric_points_once"
down_revision = "0002_metric_series"
branch_labels = None
depends_on = None

#: The columns that make a point: equal in all of them means the same point.
POINT = ("series", "step", "timestamp", "value", "is_nan", "run_uuid", "key")


def _remove_duplicates() -> None:
    conn = op.get_bind()
    metrics = sa.table("metrics", *(sa.column(name) for name in POINT))
    columns = [metrics.c[name] for name in POINT]
    duplicated = conn.execute(
        sa.select(*columns).group_by(*columns).having(sa.func.count() > 1)
    ).all()
    if not duplicated:
        return
    points = [dict(zip(POINT, row, strict=True)) for row in duplicated]
    # Every copy goes, then one comes back: portable (no row ids needed) and exact.
    conn.execute(
        metrics.delete().where(*(metrics.c[name] == sa.bindparam(f"b_{name}") for name in POINT)),
        [{f"b_{name}": point[name] for name in POINT} for point in points],
    )
    conn.execute(metrics.insert(), points)


def upgrade() -> None:
    _remove_duplicates()
    op.drop_index("ix_metrics_series", table_name="metrics")
    op.create_index("uq_metrics_point", "metrics", list(POINT), unique=True)


def downgrade() -> None:
    op.drop_index("uq_metrics_point", table_name="metrics")
    op.create_index("ix_metrics_series", "metrics", ["series", "step", "timestamp"], unique=False)
