"""Autocommit psycopg connections for the tracking store's hot single-statement paths.

log_metric, log_batch, create_run and search are each ONE statement on PostgreSQL. Through
SQLAlchemy every such call also paid for a Connection, an execution context, the compiled-cache
lookup, a Result and the isolation-level switch to autocommit and back: ~0.1 ms of CPU per call,
as much as the rest of the store. Here a call takes an idle connection and its cursor from a free
list, runs its statement (prepared by psycopg on first use) and hands them back.

Same database, same URL and connect arguments as the engine, and the same session setting the
engine applies (``synchronous_commit=off`` unless the URI chooses). A statement in autocommit is
its own transaction, so atomicity is the statement's. A connection that failed, or is left in any
state but idle, is closed rather than reused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine

from mlgrid.exceptions import TemporarilyUnavailable

#: Idle connections kept; more may be open while calls overlap (the gRPC pool bounds them).
MAX_IDLE = 8

_IDLE = psycopg.pq.TransactionStatus.IDLE


class PgStatements:
    """Runs single statements on pooled autocommit connections (see the module docstring)."""

    def __init__(self, engine: Engine, *, fast_commit: bool) -> None:
        self._args, kwargs = engine.dialect.create_connect_args(engine.url)
        if fast_commit:  # as make_engine(fast_commit=True) sets up the engine's connections
            options = f"{kwargs.get('options', '')} -c synchronous_commit=off".strip()
            kwargs = {**kwargs, "options": options}
        self._kwargs = kwargs
        self._idle: list[psycopg.Cursor[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> psycopg.Cursor[Any]:
        try:
            conn = psycopg.connect(*self._args, **self._kwargs, autocommit=True)
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        # psycopg prepares a statement after 5 runs by default; the hot statements here run
        # thousands of times. Searches opt out per call (see execute).
        conn.prepare_threshold = 0
        return conn.cursor()

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """An idle autocommit cursor; connection errors become TemporarilyUnavailable."""
        with self._lock:
            cursor = self._idle.pop() if self._idle else None
        if cursor is None:
            cursor = self._connect()
        try:
            yield cursor
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if cursor.connection.broken:
                self._drop_idle()  # they most likely died with this one (server restart)
            raise _unavailable(exc) from exc
        finally:
            self._give_back(cursor)

    def _give_back(self, cursor: psycopg.Cursor[Any]) -> None:
        conn = cursor.connection
        reusable = not conn.broken and conn.info.transaction_status == _IDLE
        with self._lock:
            if reusable and not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(cursor)
                return
        conn.close()

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for cursor in idle:
            cursor.connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_idle()


def _unavailable(exc: Exception) -> TemporarilyUnavailable:
    first_line = (str(exc).splitlines() or [""])[0]
    return TemporarilyUnavailable(f"The tracking database is unavailable: {first_line[:300]}")
