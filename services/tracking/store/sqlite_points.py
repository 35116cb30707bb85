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

Driver errors are wrapped as SQLAlchemy wraps them, so a locked database is still
TEMPORARILY_UNAVAILABLE. tests/tracking/test_sqlite_points.py compares the stored rows with the
plain path's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .write_statements import Point, latest_per_key, series_numbers


class _Compiled:
    """One statement's SQL (qmark style) and the order of its named parameters."""

    def __init__(self, statement: Any, engine: Engine, keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=engine.dialect, column_keys=keys)
        self.sql: str = compiled.string
        self.names: list[str] = list(compiled.positiontup or ())

    def rows(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [tuple(row[name] for name in self.names) for row in rows]


_POINT_COLUMNS = ["run_uuid", "key", "step", "timestamp", "value", "is_nan"]


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
        self._state = _Compiled(run_state, engine)
        self._metric = _Compiled(metric_insert, engine, [*_POINT_COLUMNS, "series"])
        self._latest = _Compiled(latest_insert, engine, _POINT_COLUMNS)
        self._forward = _Compiled(latest_forward, engine)

    def run_stage(self, conn: Connection, run_id: str) -> str | None:
        """The run's lifecycle stage (None: no such run), read inside ``conn``'s transaction."""
        row = self._run(conn, self._state, [(run_id,)], fetch=True)
        return row[0] if row else None

    def write(self, conn: Connection, run_id: str, points: Sequence[Point]) -> None:
        """The plain path's _write_points: the points (each once), then each key's latest
        point created if missing and moved forward only to a greater (step, timestamp, value)."""
        if not points:
            return
        metric_rows = [
            {
                "run_uuid": run_id,
                "key": k,
                "step": s,
                "timestamp": ts,
                "value": v,
                "is_nan": n,
                "series": series,
            }
            for (k, s, ts, v, n), series in zip(points, series_numbers(run_id, points), strict=True)
        ]
        self._run(conn, self._metric, self._metric.rows(metric_rows))
        latest = [
            {"run_uuid": run_id, "key": k, "step": s, "timestamp": ts, "value": v, "is_nan": n}
            for k, s, ts, v, n in sorted(latest_per_key(points))
        ]
        self._run(conn, self._latest, self._latest.rows(latest))
        forward = [{f"b_{k}": v for k, v in row.items()} for row in latest]
        self._run(conn, self._forward, self._forward.rows(forward))

    @staticmethod
    def _run(
        conn: Connection, statement: _Compiled, rows: list[tuple[Any, ...]], fetch: bool = False
    ) -> Any:
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            if len(rows) == 1:
                cursor = driver.execute(statement.sql, rows[0])
            else:
                cursor = driver.executemany(statement.sql, rows)
            return cursor.fetchone() if fetch else None
        except sqlite3.Error as exc:
            # The exception SQLAlchemy would have raised (OperationalError for a locked
            # database, IntegrityError, ...), so callers map it exactly as on the plain path.
            raise DBAPIError.instance(
                statement.sql, rows, exc, sqlite3.Error, dialect=conn.dialect
            ) from exc
