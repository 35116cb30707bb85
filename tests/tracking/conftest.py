"""Fixtures of the tracking suite: one store per backend (SQLite file, PostgreSQL, MySQL/MariaDB).

Every store test runs on both backends through the parametrised ``domain`` fixture. The stores
are opened once per session (migrations run once); each test isolates itself by creating its own
experiments with unique names (``new_experiment``), so tests never see each other's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

ARTIFACT_ROOT = "file:///tmp/mlgrid-tracking-tests"


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlTrackingStore]:
    path: Path = tmp_path_factory.mktemp("tracking") / "deep" / "dir" / "mlgrid.db"
    path.parent.mkdir(parents=True)
    store = SqlTrackingStore(f"sqlite:///{path}", ARTIFACT_ROOT)
    yield store
    store.close()


@pytest.fixture(scope="session")
def postgres_store(postgres_url: str) -> Iterator[SqlTrackingStore]:
    store = SqlTrackingStore(postgres_url, ARTIFACT_ROOT)
    yield store
    store.close()


@pytest.fixture(scope="session")
def mysql_store(mysql_url: str) -> Iterator[SqlTrackingStore]:
    store = SqlTrackingStore(mysql_url, ARTIFACT_ROOT)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store(request: pytest.FixtureRequest) -> SqlTrackingStore:
    """The SQL tracking store on each backend."""
    fixture = {"sqlite": "sqlite_store", "postgresql": "postgres_store", "mysql": "mysql_store"}
    return request.getfixturevalue(fixture[request.param])  # type: ignore[no-any-return]


@pytest.fixture
def domain(store: SqlTrackingStore) -> TrackingDomain:
    return TrackingDomain(store)


@pytest.fixture(scope="session")
def postgres_plain_store(postgres_url: str) -> Iterator[SqlTrackingStore]:
    """The PostgreSQL store without its fast paths: every call takes the plain path."""
    store = SqlTrackingStore(postgres_url, ARTIFACT_ROOT, fast_paths=False)
    yield store
    store.close()


@pytest.fixture
def fast_and_plain(
    postgres_store: SqlTrackingStore, postgres_plain_store: SqlTrackingStore
) -> tuple[TrackingDomain, TrackingDomain]:
    """The PostgreSQL store with its fast paths, and the same database through the plain path."""
    return TrackingDomain(postgres_store), TrackingDomain(postgres_plain_store)
