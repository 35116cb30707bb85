"""Alembic environment of the tracking schema (see mlgrid_services.common.sql)."""

from alembic import context

from mlgrid_services.common.sql import run_migrations_online
from mlgrid_services.tracking.store.schema import metadata

run_migrations_online(context, metadata)
