"""The registry's migrations: own version table, repeatable, and at home in tracking's database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from mlgrid_services.common.sql import make_engine
from mlgrid_services.registry import migrations
from mlgrid_services.tracking import migrations as tracking_migrations

REGISTRY_TABLES = {
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def test_upgrade_creates_the_tables_next_to_trackings_and_is_repeatable(empty_db: str) -> None:
    tracking_migrations.upgrade(empty_db)
    migrations.upgrade(empty_db)
    migrations.upgrade(empty_db)  # a second run has nothing to do
    engine = make_engine(empty_db)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables >= REGISTRY_TABLES | {"alembic_version_registry", "alembic_version_tracking"}
        with engine.connect() as conn:
            revisions = conn.execute(text("SELECT version_num FROM alembic_version_registry")).all()
        assert revisions == [("r0003_logged_model_id",)]
    finally:
        engine.dispose()


def test_versions_registered_before_logged_models_get_an_empty_model_id(empty_db: str) -> None:
    migrations.upgrade(empty_db, "r0002_change_notify")
    engine = make_engine(empty_db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO registered_models (id, name, creation_time, last_updated_time, "
                    "description, last_version) VALUES (1, 'm', 0, 0, '', 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO model_versions (model_id, version, creation_time, "
                    "last_updated_time, description, user_id, current_stage, source, "
                    "storage_location, run_id, run_link, status, status_message) VALUES "
                    "(1, 1, 0, 0, '', '', 'None', 's3://b/m', '', '', '', 3, '')"
                )
            )
        migrations.upgrade(empty_db)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version, logged_model_id FROM model_versions")).all()
        assert rows == [(1, "")]
    finally:
        engine.dispose()
