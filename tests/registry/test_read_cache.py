"""The read cache of model versions (PostgreSQL) never answers with what a write replaced.

Within one store every write is seen by the very next read; a write made by another store on the
same database (another replica) is seen once PostgreSQL's notification has arrived; with its
change feed down the store reads the database every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from fixtures.postgres import ADMIN_URL

from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.client import Client
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.registry.sqlstore import changefeed, pg_connections
from mlgrid_services.registry.sqlstore.readcache import ReadCache
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _tags(entity: registry_pb2.ModelVersion) -> dict[str, str]:
    return {t.key: t.value for t in entity.tags}


def _model_with_alias(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.create_model_version("m", "s3://b/1", tags=[("k", "v1")])
    store.create_model_version("m", "s3://b/2")
    store.set_registered_model_alias("m", "champion", 1)


def _warm(store: SqlRegistryStore) -> None:
    """Reads both ways until the cache answers (a notification of the setup may empty it)."""
    if store.pg is None:
        return
    assert store.cache.enabled

    def served_from_cache() -> bool:
        hits = store.cache.hits
        store.get_model_version_by_alias("m", "champion")
        store.get_model_version("m", 1)
        return store.cache.hits == hits + 2

    assert _eventually(served_from_cache)


def _missing(read: Callable[[], object]) -> bool:
    try:
        read()
    except ResourceDoesNotExist:
        return True
    return False


# Each write, then what the next reads must show.
WRITES: dict[
    str, tuple[Callable[[SqlRegistryStore], object], Callable[[SqlRegistryStore], bool]]
] = {
    "alias moved": (
        lambda s: s.set_registered_model_alias("m", "champion", 2),
        lambda s: (
            s.get_model_version_by_alias("m", "champion").version == "2"
            and list(s.get_model_version("m", 1).aliases) == []
        ),
    ),
    "alias deleted": (
        lambda s: s.delete_registered_model_alias("m", "champion"),
        lambda s: (
            _missing(lambda: s.get_model_version_by_alias("m", "champion"))
            and list(s.get_model_version("m", 1).aliases) == []
        ),
    ),
    "description updated": (
        lambda s: s.update_model_version("m", 1, "retrained"),
        lambda s: (
            s.get_model_version_by_alias("m", "champion").description == "retrained"
            and s.get_model_version("m", 1).description == "retrained"
        ),
    ),
    "stage moved": (
        lambda s: s.transition_model_version_stage("m", 1, "Production", False),
        lambda s: (
            s.get_model_version_by_alias("m", "champion").current_stage == "Production"
            and s.get_model_version("m", 1).current_stage == "Production"
        ),
    ),
    "tag set": (
        lambda s: s.set_model_version_tag("m", 1, "k", "v2"),
        lambda s: (
            _tags(s.get_model_version_by_alias("m", "champion")) == {"k": "v2"}
            and _tags(s.get_model_version("m", 1)) == {"k": "v2"}
        ),
    ),
    "tag deleted": (
        lambda s: s.delete_model_version_tag("m", 1, "k"),
        lambda s: (
            _tags(s.get_model_version_by_alias("m", "champion")) == {}
            and _tags(s.get_model_version("m", 1)) == {}
        ),
    ),
    "version deleted": (
        lambda s: s.delete_model_version("m", 1),
        lambda s: (
            _missing(lambda: s.get_model_version_by_alias("m", "champion"))
            and _missing(lambda: s.get_model_version("m", 1))
        ),
    ),
    "model renamed": (
        lambda s: s.rename_registered_model("m", "m2"),
        lambda s: (
            _missing(lambda: s.get_model_version_by_alias("m", "champion"))
            and _missing(lambda: s.get_model_version("m", 1))
            and s.get_model_version_by_alias("m2", "champion").name == "m2"
        ),
    ),
    "model deleted": (
        lambda s: s.delete_registered_model("m"),
        lambda s: (
            _missing(lambda: s.get_model_version_by_alias("m", "champion"))
            and _missing(lambda: s.get_model_version("m", 1))
        ),
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_the_read_after_a_write_of_this_store_shows_the_write(
    store: SqlRegistryStore, write: str
) -> None:
    change, shows_it = WRITES[write]
    _model_with_alias(store)
    _warm(store)
    change(store)
    assert shows_it(store)  # at once: no waiting for any notification


def test_a_write_by_another_store_on_the_database_reaches_this_cache(
    fresh_postgres_url: str,
) -> None:
    here = SqlRegistryStore(fresh_postgres_url)
    there = SqlRegistryStore(fresh_postgres_url)
    try:
        _model_with_alias(here)
        _warm(here)
        there.set_registered_model_alias("m", "champion", 2)
        assert _eventually(lambda: here.get_model_version_by_alias("m", "champion").version == "2")
        # And the other way round, through a cache the other store has warmed too.
        assert there.get_model_version_by_alias("m", "champion").version == "2"
        here.update_model_version("m", 2, "from here")
        assert _eventually(lambda: there.get_model_version("m", 2).description == "from here")
    finally:
        here.close()
        there.close()


@contextmanager
def _registry_service(url: str) -> Iterator[Client]:
    app = create_service_app("registry", ServiceConfig(backend_store_uri=url))
    running = start_server(app.services)
    try:
        yield Client(f"grpc://127.0.0.1:{running.port}")
    finally:
        running.stop(grace=0.5)
        app.close()


def test_two_registry_services_on_one_database_see_each_others_writes(
    fresh_postgres_url: str,
) -> None:
    with _registry_service(fresh_postgres_url) as a, _registry_service(fresh_postgres_url) as b:
        a.create_registered_model("m")
        a.create_model_version("m", "s3://b/1")
        a.create_model_version("m", "s3://b/2")
        for version in ("1", "2", "1", "2"):  # each service reads from a warm cache by now
            a.set_registered_model_alias("m", "champion", version)
            # The writer's own service: at once.
            assert a.get_model_version_by_alias("m", "champion").version == version
            # The other one: as soon as PostgreSQL's notification has reached it.
            assert _eventually(
                lambda c=b, v=version: c.get_model_version_by_alias("m", "champion").version == v
            )
            a, b = b, a


def _terminate(url: str, application_name: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s",
            (database, application_name),
        ).fetchall()
    return len(rows)


_TRIGGER = "model_versions_notify_change"


def test_with_its_change_feed_down_the_store_reads_the_database(fresh_postgres_url: str) -> None:
    store = SqlRegistryStore(fresh_postgres_url)
    admin = psycopg.connect(fresh_postgres_url.replace("+psycopg", ""), autocommit=True)
    try:
        _model_with_alias(store)
        _warm(store)
        # Without its trigger the feed will not listen again, so the outage lasts.
        admin.execute(f"ALTER TABLE model_versions DISABLE TRIGGER {_TRIGGER}")
        assert _terminate(fresh_postgres_url, changefeed.APPLICATION_NAME) == 1
        assert _eventually(lambda: not store.cache.enabled)
        # Not notified (trigger off) and not cached: the change shows at once.
        admin.execute("UPDATE model_versions SET description = 'by hand' WHERE version = 1")
        hits = store.cache.hits
        assert store.get_model_version_by_alias("m", "champion").description == "by hand"
        assert store.get_model_version_by_alias("m", "champion").description == "by hand"
        assert store.cache.hits == hits
        # Once it can, the feed listens again by itself and the cache is used again.
        admin.execute(f"ALTER TABLE model_versions ENABLE TRIGGER {_TRIGGER}")
        assert _eventually(lambda: store.cache.enabled)
        _warm(store)
        store.set_registered_model_alias("m", "champion", 2)
        assert store.get_model_version_by_alias("m", "champion").version == "2"
    finally:
        admin.close()
        store.close()


def test_a_read_survives_its_pooled_connection_being_killed(fresh_postgres_url: str) -> None:
    store = SqlRegistryStore(fresh_postgres_url)
    try:
        store.create_registered_model("m")
        store.create_model_version("m", "s3://b/1")
        assert _terminate(fresh_postgres_url, pg_connections.APPLICATION_NAME) >= 1
        assert store.get_model_version("m", 1).source == "s3://b/1"
    finally:
        store.close()


# --- the cache's own rules -------------------------------------------------------------------


@pytest.fixture
def cache() -> Iterator[ReadCache]:
    cache = ReadCache(max_entries=2)
    cache.set_enabled(True)
    yield cache


def _version(number: str) -> registry_pb2.ModelVersion:
    return registry_pb2.ModelVersion(name="m", version=number)


def test_a_value_read_before_a_write_is_not_kept(cache: ReadCache) -> None:
    _, token = cache.lookup("k")
    with cache.writing():
        pass
    cache.store("k", token, _version("1"))
    assert cache.lookup("k")[0] is None


def test_nothing_read_while_a_write_is_under_way_is_kept(cache: ReadCache) -> None:
    with cache.writing():
        _, token = cache.lookup("k")
        assert token is None
        cache.store("k", token, _version("1"))
    assert cache.lookup("k")[0] is None


def test_a_change_notification_empties_the_cache(cache: ReadCache) -> None:
    _, token = cache.lookup("k")
    cache.store("k", token, _version("1"))
    cache.changed()
    assert cache.lookup("k")[0] is None


def test_callers_get_copies_they_cannot_spoil_the_cache_with(cache: ReadCache) -> None:
    entity = _version("1")
    _, token = cache.lookup("k")
    cache.store("k", token, entity)
    entity.version = "9"
    got = cache.lookup("k")[0]
    assert got is not None and got.version == "1"
    got.version = "8"
    again = cache.lookup("k")[0]
    assert again is not None and again.version == "1"


def test_a_disabled_cache_neither_keeps_nor_answers(cache: ReadCache) -> None:
    _, token = cache.lookup("k")
    cache.store("k", token, _version("1"))
    cache.set_enabled(False)
    assert cache.lookup("k") == (None, None)
    cache.set_enabled(True)
    assert cache.lookup("k")[0] is None  # back on, but empty: changes may have been missed


def test_the_oldest_entry_goes_when_the_cache_is_full(cache: ReadCache) -> None:
    for key in ("a", "b", "c"):
        _, token = cache.lookup(key)
        cache.store(key, token, _version(key))
    assert cache.lookup("a")[0] is None
    assert cache.lookup("b")[0] is not None
    assert cache.lookup("c")[0] is not None


def test_with_the_cache_turned_off_another_stores_write_shows_at_once(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLGRID_REGISTRY_READ_CACHE=false: strict consistency across replicas, no waiting."""
    monkeypatch.setenv("MLGRID_REGISTRY_READ_CACHE", "false")
    here = SqlRegistryStore(fresh_postgres_url)
    there = SqlRegistryStore(fresh_postgres_url)
    try:
        _model_with_alias(here)
        assert here.get_model_version_by_alias("m", "champion").version == "1"
        assert not here.cache.enabled
        there.set_registered_model_alias("m", "champion", 2)
        assert here.get_model_version_by_alias("m", "champion").version == "2"
    finally:
        here.close()
        there.close()
