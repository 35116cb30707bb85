"""The SQL tracking store (SQLite and PostgreSQL): every tracking operation, SQL only here."""

from __future__ import annotations

from sqlalchemy import Engine

from mlgrid.store.tracking_store import AbstractTrackingStore
from mlgrid.uris import uri_scheme
from mlgrid_services.common.sql import make_engine

from .sql_experiments import ExperimentsMixin
from .sql_history import HistoryMixin
from .sql_logged_model_search import LoggedModelSearchMixin
from .sql_logged_models import LoggedModelsMixin
from .sql_runs import RunsMixin
from .sql_writes import WritesMixin


class SqlTrackingStore(
    LoggedModelsMixin,  # first: it extends get_run with model inputs and outputs
    LoggedModelSearchMixin,
    ExperimentsMixin,
    RunsMixin,
    WritesMixin,
    HistoryMixin,
    AbstractTrackingStore,
):
    """Tracking store on a SQL database; migrates the schema to the latest revision on open."""

    def __init__(
        self,
        store_uri: str | Engine,
        default_artifact_root: str,
        *,
        migrate: bool = True,
        fast_paths: bool = True,
    ) -> None:
        """``fast_paths=False``: the plain path only, also on PostgreSQL (pg_fast.py)."""
        if _on_postgresql(store_uri):
            # Its binary array dumpers must be registered before the engine is made: the
            # engine's psycopg dialect takes a copy of psycopg's adapters then, and the fast
            # paths connect with that copy. A SQLite store never loads psycopg.
            from . import pg_binary  # noqa: F401

        engine = make_engine(store_uri) if isinstance(store_uri, str) else store_uri
        super().__init__(engine, default_artifact_root, fast_paths=fast_paths)
        if migrate:
            from mlgrid_services.tracking.migrations import upgrade

            upgrade(engine)
        self._prepare_write_statements()
        self._fix_default_location()

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self.engine.dispose()


def _on_postgresql(store_uri: str | Engine) -> bool:
    if isinstance(store_uri, str):
        return uri_scheme(store_uri) in ("postgresql", "postgres")
    return store_uri.dialect.name == "postgresql"
