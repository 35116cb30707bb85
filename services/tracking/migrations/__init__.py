"""Alembic migrations of the tracking schema.

``upgrade(uri)`` backs ``mlgrid db upgrade`` and runs when the service starts. The version is kept
in ``alembic_version_tracking`` so the registry can share the database with its own table.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from mlgrid_services.common.sql import current_revision, upgrade_database

#: Alembic version table of the tracking schema.
VERSION_TABLE = "alembic_version_tracking"
SCRIPT_LOCATION = Path(__file__).resolve().parent


def upgrade(uri: str | Engine, revision: str = "head") -> None:
    """Migrates the tracking schema of ``uri`` (a database URL or an engine) to ``revision``."""
    upgrade_database(uri, SCRIPT_LOCATION, VERSION_TABLE, revision)


def revision_of(engine: Engine) -> str | None:
    """The tracking schema's current revision in ``engine``'s database (None if never run)."""
    return current_revision(engine, VERSION_TABLE)
