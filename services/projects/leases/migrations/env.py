"""Alembic environment of the run-lease migrations; the shared helper does the work."""

from alembic import context

from mlgrid_services.common.sql import run_migrations_online

run_migrations_online(context)
