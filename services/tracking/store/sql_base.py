"""What every part of the SQL tracking store shares: the engine, dialect helpers, row → proto."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from mlgrid.exceptions import (
    InvalidParameterValue,
    ResourceDoesNotExist,
)
from mlgrid_services.common.sql import database_unavailable, write_transaction
from mlgrid_services.common.sql_dialect import POSTGRESQL, insert_ignore, upsert

from . import schema as t
from .rows import RUN_INFO_COLUMNS
from .sqlite_points import SqlitePoints

if TYPE_CHECKING:
    from .pg_fast import PgFastPaths

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


def metric_value(value: float, is_nan: bool) -> float:
    return math.nan if is_nan else value


def parse_experiment_id(experiment_id: str) -> int:
    """The integer key of an experiment id; ResourceDoesNotExist for ids this store never made."""
    try:
        number = int(experiment_id)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or number > 2**31 - 1 or str(number) != experiment_id:
        raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
    return number


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot be reached (or stays locked past the busy timeout) is a
    retryable TEMPORARILY_UNAVAILABLE for the caller, not an internal error."""
    try:
        yield
    except _connection_errors() as exc:
        raise database_unavailable("tracking", exc) from exc


def _connection_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's, and psycopg's own where the fast paths use it directly. psycopg is only
    imported by a PostgreSQL store (a SQLite one starts ~0.2 s sooner without it), and an
    error of it can only come once it is."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return (OperationalError, InterfaceError)
    return (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


class _Attempt:
    """One try of a write (see SqlStoreBase._deadlock_retries): swallows an InnoDB deadlock
    unless it is the last try."""

    def __init__(self, last: bool) -> None:
        self.last = last
        self.done = False

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if exc is None:
            self.done = True
            return False
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        orig = getattr(cause, "orig", None)
        code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
        if not self.last and code in (1213, 1205):
            time.sleep(0.01)
            return True  # rolled back whole by InnoDB: run the transaction again
        return False


class SqlStoreBase:
    """Engine, dialect-specific statements and the checks every write starts with."""

    engine: Engine
    default_artifact_root: str

    def __init__(
        self, engine: Engine, default_artifact_root: str, *, fast_paths: bool = True
    ) -> None:
        self.engine = engine
        self.default_artifact_root = default_artifact_root.rstrip("/")
        self.dialect = engine.dialect.name
        #: PostgreSQL: the fast paths that bench/ shows pay (pg_fast.py); None: the plain path.
        self._fast: PgFastPaths | None = None
        if fast_paths and self.dialect == POSTGRESQL:
            from .pg_fast import PgFastPaths  # psycopg: loaded by PostgreSQL stores only

            self._fast = PgFastPaths(engine)
        #: SQLite: the plain path's metric statements compiled once (sqlite_points.py); set
        #: with the write statements.
        self._sqlite_points: SqlitePoints | None = None
        self.fast_paths = fast_paths
        self._analyze_lock = threading.Lock()
        self._runs_since_analyze = 0
        self._analyzing = False

    run_info_columns = RUN_INFO_COLUMNS

    #: New runs after which PostgreSQL's planner statistics are refreshed (see _note_new_run).
    ANALYZE_EVERY_RUNS = 1000

    def _note_new_run(self) -> None:
        """Counts created runs; every ANALYZE_EVERY_RUNS, refreshes planner statistics in the
        background. Autovacuum does this too, but only after 10% growth and up to a minute
        later; until then the planner believes a fresh experiment holds a handful of runs and
        picks nested loops that make search over thousands of just-created runs several times
        slower than the hash joins it picks with fresh statistics."""
        if self.dialect != POSTGRESQL:
            return
        with self._analyze_lock:
            self._runs_since_analyze += 1
            if self._runs_since_analyze < self.ANALYZE_EVERY_RUNS or self._analyzing:
                return
            self._runs_since_analyze = 0
            self._analyzing = True
        threading.Thread(target=self._analyze, name="mlgrid-analyze", daemon=True).start()

    def _analyze(self) -> None:
        try:
            with self._autocommit() as conn:
                conn.exec_driver_sql("ANALYZE runs, params, tags, latest_metrics")
        except Exception:  # statistics are an optimisation; never fail a request over them
            log.warning("background ANALYZE failed", exc_info=True)
        finally:
            with self._analyze_lock:
                self._analyzing = False

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with _database_errors(), write_transaction(self.engine) as conn:
            yield conn

    def _deadlock_retries(self, tries: int = 4) -> Iterator[_Attempt]:
        """Attempts of one write transaction: ``for a in self._deadlock_retries(): with a, ...``.

        InnoDB (MySQL, MariaDB) may pick racing metric upserts of one run as deadlock victims
        and roll the victim's whole transaction back (errors 1213, 1205); the transaction is then
        simply run again. The other databases never need it: SQLite serialises writers, and
        PostgreSQL's upserts on one key queue rather than deadlock."""
        for number in range(tries):
            attempt = _Attempt(last=number == tries - 1 or self.dialect != "mysql")
            yield attempt
            if attempt.done:
                return

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _database_errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _autocommit(self) -> Iterator[Connection]:
        """A connection whose statements commit on their own (single-statement writes)."""
        with _database_errors(), self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def _insert_ignore(self, table: sa.Table) -> Any:
        return insert_ignore(self.dialect, table)

    def _upsert(self, table: sa.Table, key: tuple[str, ...], columns: tuple[str, ...]) -> Any:
        return upsert(self.dialect, table, key, columns)

    def _insert_rows(self, conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
        """Inserts ``rows`` with ``statement``: on PostgreSQL as ONE multi-row statement (the
        driver's executemany pipelines one statement per row, several round trips), on SQLite
        with executemany (in-process, already cheap)."""
        if not rows:
            return
        if self.dialect == POSTGRESQL and len(rows) > 1:
            conn.execute(statement.values(rows))
        else:
            conn.execute(statement, rows if len(rows) > 1 else rows[0])

    # ------------------------------------------------------------------ checks

    _run_state = sa.select(t.runs.c.lifecycle_stage).where(
        t.runs.c.run_uuid == sa.bindparam("run_id")
    )

    def _check_run_writable(self, conn: Connection, run_id: str) -> None:
        """Raises unless the run exists and is active. A run of a deleted experiment is deleted
        with it, so the run's own stage is enough (one indexed lookup per write)."""
        if self._sqlite_points is not None:
            stage = self._sqlite_points.run_stage(conn, run_id)
        else:
            stage = conn.execute(self._run_state, {"run_id": run_id}).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"The run {run_id} must be in the 'active' state to be changed; its current "
                f"state is {stage!r}"
            )

    def _check_run_exists(self, conn: Connection, run_id: str) -> str:
        if self._sqlite_points is not None:
            stage = self._sqlite_points.run_stage(conn, run_id)
        else:
            stage = conn.execute(self._run_state, {"run_id": run_id}).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        return str(stage)

    def _experiment_stage(self, conn: Connection, experiment_id: int) -> str:
        stage = conn.execute(
            sa.select(t.experiments.c.lifecycle_stage).where(
                t.experiments.c.experiment_id == experiment_id
            )
        ).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
        return str(stage)
