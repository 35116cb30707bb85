"""SQLite: the plain path's metric statements, compiled once, run on the driver's connection.

Embedded mode's ``log_metric`` spent most of its CPU in SQLAlchemy's execution of four small
statements (~0.1 ms each: compiled-cache lookup, parameter processing, result set-up, events),
more than SQLite's work and the in-process call together. This object compiles the SAME Core
statements the plain path builds (sql_writes.py) for SQLite once, and executes their SQL with
the same parameters on the DBAPI connection under the store's own transaction (BEGIN
IMMEDIATE, commit, the call's interrupt, all unchanged). So the statements stay written once;
only the per-statement machinery is skipped. The plain path's row lock on the latest points
(``SELECT … FOR UPDATE``) is not run: SQLite has no row locks (the dialect drops FOR UPDATE)
and BEGIN IMMEDIATE already holds the database's write lock.

A single ``log_metric`` (embedded mode's hot call) also runs its transaction here
(:meth:`SqlitePoints.transaction`): a pooled connection, BEGIN IMMEDIATE, the run check and the
statements, COMMIT. SQLAlchemy's Connection, its transaction objects and the "begin" event's
statement execution cost more CPU than SQLite's own work for the call (~45% of the store's
share of it in a profile); the pool is kept, so the connection is still tied to the call
(an ended call interrupts its statement, sql.py) and returned to the pool as before.

Driver errors are wrapped as SQLAlchemy wraps them, so a locked database is still
TEMPORARILY_UNAVAILABLE. tests/tracking/test_sqlite_points.py compares the stored rows with the
plain path's.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, StatementError

from .write_statements import Point, latest_per_key, series_numbers


class _Compiled:
    """One statement's SQL (qmark style) and the order of its named parameters."""

    def __init__(self, statement: Any, engine: Engine, keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=engine.dialect, column_keys=keys)
        self.sql: str = compiled.string
        self.names: list[str] = list(compiled.positiontup or ())

    def picker(self) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        """Reorders a point row (run, *point, series) as this statement's parameters, in C (a
        dict per row and a lookup per name cost as much as the statement). A parameter named
        b_<column> (the UPDATE's) takes that column's value."""
        return operator.itemgetter(
            *(_ROW_FIELDS.index(name.removeprefix("b_")) for name in self.names)
        )


#: The fields of a point row, in order: the run and a stored point (write_statements.Point),
#: then the point's series number (metrics rows only).
_ROW_FIELDS = ("run_uuid", "key", "step", "timestamp", "value", "is_nan", "series")
_POINT_COLUMNS = list(_ROW_FIELDS[:-1])


class SqlitePoints:
    """Checks a run is writable and writes metric points, as the plain path does."""

    def __init__(
        self,
        engine: Engine,
        run_state: Any,
        metric_insert: Any,
        latest_insert: Any,
        latest_forward: Any,
    ) -> None:
        self._engine = engine
        self._dialect: Dialect = engine.dialect
        self._state = _Compiled(run_state, engine)  # its one parameter: the run id
        self._metric = _Compiled(metric_insert, engine, list(_ROW_FIELDS))
        self._latest = _Compiled(latest_insert, engine, _POINT_COLUMNS)
        self._forward = _Compiled(latest_forward, engine)
        self._metric_row = self._metric.picker()
        self._latest_row = self._latest.picker()
        self._forward_row = self._forward.picker()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE, as sql.write_transaction starts one) on a
        pooled connection's driver connection: committed when the block ends, rolled back
        whole when it raises."""
        pooled = self._engine.raw_connection()
        try:
            driver = pooled.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            try:
                driver.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._wrapped("BEGIN IMMEDIATE", None, exc) from exc
            try:
                yield driver
                try:
                    driver.commit()
                except sqlite3.Error as exc:
                    raise self._wrapped("COMMIT", None, exc) from exc
            except BaseException:
                if driver.in_transaction:
                    driver.rollback()
                raise
        finally:
            pooled.close()

    def run_stage(self, conn: Connection | sqlite3.Connection, run_id: str) -> str | None:
        """The run's lifecycle stage (None: no such run), read inside ``conn``'s transaction."""
        row = self._run(conn, self._state, [(run_id,)], fetch=True)
        return row[0] if row else None

    def write(
        self, conn: Connection | sqlite3.Connection, run_id: str, points: Sequence[Point]
    ) -> None:
        """The plain path's _write_points: the points (each once), then each key's latest
        point created if missing and moved forward only to a greater (step, timestamp, value)."""
        if not points:
            return
        metric_row = self._metric_row
        rows = [
            metric_row((run_id, *point, series))
            for point, series in zip(points, series_numbers(run_id, points), strict=True)
        ]
        self._run(conn, self._metric, rows)
        latest = [(run_id, *point) for point in sorted(latest_per_key(points))]
        self._run(conn, self._latest, list(map(self._latest_row, latest)))
        self._run(conn, self._forward, list(map(self._forward_row, latest)))

    def _run(
        self,
        conn: Connection | sqlite3.Connection,
        statement: _Compiled,
        rows: list[tuple[Any, ...]],
        fetch: bool = False,
    ) -> Any:
        driver = conn if isinstance(conn, sqlite3.Connection) else conn.connection.driver_connection
        assert driver is not None
        try:
            if len(rows) == 1:
                cursor = driver.execute(statement.sql, rows[0])
            else:
                cursor = driver.executemany(statement.sql, rows)
            return cursor.fetchone() if fetch else None
        except sqlite3.Error as exc:
            raise self._wrapped(statement.sql, rows, exc) from exc

    def _wrapped(self, sql: str, params: Any, exc: sqlite3.Error) -> StatementError:
        """The exception SQLAlchemy would have raised for ``exc`` (OperationalError for a
        locked database, IntegrityError, ...), so callers map it exactly as on the plain path."""
        return DBAPIError.instance(sql, params, exc, sqlite3.Error, dialect=self._dialect)
