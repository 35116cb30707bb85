"""PostgreSQL: autovacuum the metrics table after every million new points, not after 20 % of it.

A history is read from uq_metrics_point alone (an index-only scan, store/pg_history.py), but
only the pages the visibility map marks all-visible spare the visit to the table, and VACUUM
is what marks them. PostgreSQL's insert-driven autovacuum waits for 1,000 + 20 % of the table's
rows: on a table of 500M points, the newest 100M (the histories people are reading) would each
cost a heap fetch. Measured on a 10M-point history: 8.7 s of the database's CPU before VACUUM,
5.2 s after (docs/benchmarks.md). An insert-driven vacuum skips the pages already all-visible,
so vacuuming every million points costs about one pass over those new points' pages.

Other databases have no such setting: nothing to do there.

Revision ID: 0006_metrics_insert_vacuum
Revises: 0005_latest_metrics_value_index
Create Date: 2026-12-07
"""

from alembic import op

revision = "0006_metrics_insert_vacuum"
down_revision = "0005_latest_metrics_value_index"
branch_labels = None
depends_on = None

#: New points after which autovacuum visits the metrics table (whatever its size).
INSERT_THRESHOLD = 1_000_000


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE metrics SET (autovacuum_vacuum_insert_scale_factor = 0,"
            f" autovacuum_vacuum_insert_threshold = {INSERT_THRESHOLD})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE metrics RESET (autovacuum_vacuum_insert_scale_factor,"
            " autovacuum_vacuum_insert_threshold)"
        )
