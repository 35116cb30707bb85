"""Shared plumbing of the SQL registry store: the engine, lookups and row readers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from mlgrid import environment as env
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.common.sql import make_engine, normalize_db_uri, write_transaction

from .. import migrations
from ..search import OrderBy
from . import pgfast
from . import queries as q
from .readcache import ReadCache
from .schema import model_versions, registered_models

if TYPE_CHECKING:
    from .changefeed import ChangeFeed
    from .pg_connections import PgConnections

READY = registry_pb2.MODEL_VERSION_STATUS_READY


def now_ms() -> int:
    return int(time.time() * 1000)


def model_not_found(name: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Registered Model with name={name!r} not found")


def version_not_found(name: str, version: int) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Model Version (name={name!r}, version={version}) not found")


def alias_not_found(name: str, alias: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Registered model alias {alias!r} of model {name!r} not found")


def _engine_options(store_uri: str) -> dict[str, Any]:
    """PostgreSQL: no server-side prepared statements. The registry's statements are cheap to
    plan, and psycopg's auto-prepare (after 5 runs per pooled connection) measured about 3x
    slower per checkout+query here than plain execution."""
    if normalize_db_uri(store_uri).startswith("postgresql"):
        return {"connect_args": {"prepare_threshold": None}}
    return {}


class SqlStoreBase:
    """Engine (schema migrated to head on open) and the lookups every operation needs.

    On PostgreSQL also: the single-statement fast paths (pgfast.py) and a read cache of model
    versions kept coherent by write bookkeeping and a change feed (readcache.py, changefeed.py).
    """

    def __init__(self, store_uri: str, *, migrate: bool = True) -> None:
        self.store_uri = store_uri
        self.engine = make_engine(store_uri, **_engine_options(store_uri))
        self.dialect = self.engine.dialect.name
        #: PostgreSQL only: connections for the single-statement hot paths (see pgfast).
        self.pg: PgConnections | None = None
        if self.dialect == "postgresql":
            from .pg_connections import PgConnections  # psycopg only where it is used

            self.pg = PgConnections(self.engine)
        #: Version reads (PostgreSQL only: on SQLite the change feed never turns it on).
        self.cache = ReadCache()
        if migrate:
            migrations.upgrade(self.engine)
        # After migrating: the feed only turns the cache on once the change triggers exist.
        # Without the feed the cache stays off (a deployment can ask for that: several
        # replicas may then never serve a read older than the database).
        use_cache = self.pg is not None and env.MLGRID_REGISTRY_READ_CACHE.get()
        self._feed: ChangeFeed | None = None
        if use_cache and self.pg is not None:
            from .changefeed import ChangeFeed

            self._feed = ChangeFeed(self.pg.connect, self.cache)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        if self.pg is not None:
            self.pg.close()
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; the read cache is emptied before it starts and after it ends.
        Every write of the store goes through here (or through ``self.cache.writing()``)."""
        with self.cache.writing(), write_transaction(self.engine) as conn:
            yield conn

    # --- helpers -------------------------------------------------------------------------------

    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(q.MODEL_ID_BY_NAME, {"name": name}).scalar()
        if model_id is None:
            raise model_not_found(name)
        return int(model_id)

    def _require_version(self, conn: Connection, name: str, version: int) -> int:
        """The model id, once the version is known to exist."""
        model_id = self._model_id(conn, name)
        found = conn.execute(
            select(model_versions.c.version).where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
        ).scalar()
        if found is None:
            raise version_not_found(name, version)
        return model_id

    def _touch_model(self, conn: Connection, model_id: int, when: int) -> None:
        conn.execute(
            update(registered_models)
            .where(registered_models.c.id == model_id)
            .values(last_updated_time=when)
        )

    def _read_model(self, conn: Connection, name: str) -> registry_pb2.RegisteredModel:
        rows = list(conn.execute(select(registered_models).where(registered_models.c.name == name)))
        if not rows:
            raise model_not_found(name)
        return q.load_models(conn, rows)[0]

    def _read_version(self, conn: Connection, name: str, version: int) -> registry_pb2.ModelVersion:
        rows = list(conn.execute(q.VERSION_BY_NUMBER, {"name": name, "version": version}))
        if not rows:
            self._model_id(conn, name)  # a missing model is reported as such
            raise version_not_found(name, version)
        return q.load_versions(conn, rows)[0]

    def _fast_version_read(
        self,
        key: tuple[str, str, Any],
        sql: str,
        params: dict[str, Any],
        not_found: Callable[[], ResourceDoesNotExist],
    ) -> registry_pb2.ModelVersion:
        """PostgreSQL: one model version through the read cache, else one statement of pgfast
        (``params`` has the model's ``name``; ``not_found`` is the error when the model exists
        but ``sql`` finds no row)."""
        assert self.pg is not None
        cached, token = self.cache.lookup(key)
        if cached is not None:
            return cached
        name = params["name"]
        row = self.pg.fetchone(sql, params)
        if row is None:
            if self.pg.fetchone(pgfast.MODEL_EXISTS, {"name": name}) is None:
                raise model_not_found(name)
            raise not_found()
        entity = pgfast.version_from_row(name, row)
        self.cache.store(key, token, entity)
        return entity

    @staticmethod
    def _ordering(
        wanted: list[OrderBy], columns: dict[str, Any], tie_break: list[OrderBy]
    ) -> list[Any]:
        named = {o.key for o in wanted}
        clauses = []
        for o in [*wanted, *(t for t in tie_break if t.key not in named)]:
            column = columns[o.key]
            clauses.append(column.asc() if o.ascending else column.desc())
        return clauses
