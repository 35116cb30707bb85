"""An index on latest_metrics (key, is_nan, value) for searches ordered by a metric.

A search page ordered by a metric used to read every matching run's latest value and sort them
all (half a second at 100k runs). With this index the store walks one key's numbers in order and
stops after the page (sql_runs.search_runs).

Revision ID: 0005_latest_metrics_value_index
Revises: 0004_logged_models
Create Date: 2026-12-06
"""

from alembic import op

revision = "0005_latest_metrics_value_index"
down_revision = "0004_logged_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_latest_metrics_key_value", "latest_metrics", ["key", "is_nan", "value"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_latest_metrics_key_value", table_name="latest_metrics")
