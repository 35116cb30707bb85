"""Alembic migrations of the registry's SQL store (own version table, so the registry can share a
database with the tracking service). ``mlgrid db upgrade`` calls :func:`upgrade`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from mlgrid_services.common.sql import upgrade_database

#: The registry's Alembic version table (tracking keeps its own).
VERSION_TABLE = "alembic_version_registry"
SCRIPT_LOCATION = Path(__file__).resolve().parent


def upgrade(uri: str | Engine, revision: str = "head") -> None:
    """Creates or upgrades the registry tables in the database at ``uri`` (or an engine)."""
    upgrade_database(uri, SCRIPT_LOCATION, VERSION_TABLE, revision)
