"""Registry fixtures: the SQL registry store on SQLite (a file per test), PostgreSQL and
MySQL/MariaDB."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fixtures.postgres import ADMIN_URL
from sqlalchemy import text

from mlgrid_services.registry.sqlstore.store import SqlRegistryStore

REGISTRY_TABLES = (
    "registered_model_aliases",
    "model_version_tags",
    "model_versions",
    "registered_model_tags",
    "registered_models",
)


@pytest.fixture(scope="session")
def registry_postgres_url(postgres_url: str) -> Iterator[str]:
    """A database of the registry suite's own, so emptying its tables between tests cannot touch
    what session-wide stacks (grpc_stack_pg) keep in the shared session database."""
    if os.environ.get("MLGRID_TEST_POSTGRES_URL"):
        yield postgres_url  # an explicit database is used as is
        return
    name = f"mlgrid_reg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_registry_store(registry_postgres_url: str) -> Iterator[SqlRegistryStore]:
    store = SqlRegistryStore(registry_postgres_url)
    yield store
    store.close()


@pytest.fixture(scope="session")
def _mysql_registry_store(mysql_url: str) -> Iterator[SqlRegistryStore]:
    store = SqlRegistryStore(mysql_url)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRegistryStore]:
    """A registry store with empty tables, on each backend."""
    if request.param == "sqlite":
        sqlite_store = SqlRegistryStore(f"sqlite:///{tmp_path / 'registry.db'}")
        yield sqlite_store
        sqlite_store.close()
        return
    if request.param == "mysql":
        my_store: SqlRegistryStore = request.getfixturevalue("_mysql_registry_store")
        with my_store.engine.begin() as conn:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in REGISTRY_TABLES:
                conn.execute(text(f"TRUNCATE {table}"))
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
        yield my_store
        return
    pg_store: SqlRegistryStore = request.getfixturevalue("_pg_registry_store")
    with pg_store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(REGISTRY_TABLES)} RESTART IDENTITY"))
    yield pg_store


@pytest.fixture(autouse=True)
def _s3_sources_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests register versions from made-up buckets (s3://bucket/...); the deployment's
    location policy (tests/hardening/test_artifact_locations.py) allows them only when told."""
    monkeypatch.setenv("MLGRID_ARTIFACTS_ALLOWED_ROOTS", "s3:*")
