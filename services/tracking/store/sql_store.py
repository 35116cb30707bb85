"""The SQL tracking store (SQLite and PostgreSQL): every tracking operation, SQL only here."""

from __future__ import annotations

from sqlalchemy import Engine

from mlgrid.store.tracking_store import AbstractTrackingStore
from mlgrid_services.common.sql import make_engine

from .sql_experiments import ExperimentsMixin
from .sql_history import HistoryMixin
from .sql_runs import RunsMixin
from .sql_writes import WritesMixin


class SqlTrackingStore(
    ExperimentsMixin, RunsMixin, WritesMixin, HistoryMixin, AbstractTrackingStore
):
    """Tracking store on a SQL database; migrates the schema to the latest revision on open."""

    def __init__(
        self, store_uri: str | Engine, default_artifact_root: str, *, migrate: bool = True
    ) -> None:
        # Tracking writes are small and frequent: commit without waiting for fsync on
        # PostgreSQL (see make_engine); opt out with ?options=-c%20synchronous_commit%3Don.
        fast_commit = isinstance(store_uri, str) and "synchronous_commit" not in store_uri
        engine = (
            make_engine(store_uri, fast_commit=True) if isinstance(store_uri, str) else store_uri
        )
        super().__init__(engine, default_artifact_root, fast_commit=fast_commit)
        if migrate:
            from mlgrid_services.tracking.migrations import upgrade

            upgrade(engine)
        self._prepare_write_statements()
        self._fix_default_location()

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        self.engine.dispose()
