"""PostgreSQL: every change to the tables a model version is read from sends a notification.

The registry service caches version reads (services/registry/sqlstore/readcache.py) and listens
on this channel to drop its cache when another process changes the registry: another replica, an
older mlgrid, an operator's SQL. A trigger, rather than a NOTIFY in each write of the store,
covers every writer, including ones that bypass mlgrid. PostgreSQL sends the notification only if
the transaction commits, and once per transaction however many statements fired it.

Revision ID: r0002_change_notify
Revises: r0001_initial
Create Date: 2026-11-22
"""

from alembic import op

revision = "r0002_change_notify"
down_revision = "r0001_initial"
branch_labels = None
depends_on = None

#: Must match services/registry/sqlstore/changefeed.py.
CHANNEL = "mlgrid_registry_changed"
FUNCTION = "mlgrid_registry_notify_change"

#: What a model version read returns comes from these (registered-model tags do not appear in it).
TABLES = ("registered_models", "model_versions", "model_version_tags", "registered_model_aliases")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no cross-process notification; the read cache is PostgreSQL-only
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_change "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
