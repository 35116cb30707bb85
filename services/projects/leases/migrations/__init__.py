"""Alembic migrations of the projects service's run leases (own version table, so the leases can
live in the tracking database beside the tracking and registry tables)."""
