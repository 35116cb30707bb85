"""Pooled autocommit psycopg cursors for single-statement hot paths (tracking and registry stores).

Through SQLAlchemy every statement also pays for a Connection, an execution context, the
compiled-cache lookup, a Result and (for autocommit) the isolation-level switch and back: about
0.1 ms of CPU and, for reads, BEGIN/ROLLBACK round trips. The hottest calls of the stores are
one statement each, so they run here instead: an idle connection and its cursor come off a free
list (making a cursor per call measured ~40% of a statement's client CPU), the statement runs
prepared (``prepare_threshold=0``: these run thousands of times), and both go back.

Connections are made like the engine's own (same URL and connect arguments) plus the libpq
``options`` a store asks for. A statement in autocommit is its own transaction, so its atomicity
is the statement's. A connection that broke, or is left in any state but idle (an interrupted
statement leaves it mid-protocol), is closed rather than handed to another call.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine

from . import fork_safety
from .call_scope import cancellable
from .sql import database_unavailable

_IDLE = psycopg.pq.TransactionStatus.IDLE


class PgCursors:
    """Autocommit cursors to the engine's database, reused through a free list."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_idle: int,
        application_name: str,
        session_options: str = "",
        database: str,
    ) -> None:
        """``session_options`` (libpq ``options``, e.g. ``-c synchronous_commit=off``) are added
        to the URI's own; ``database`` ("tracking", "registry") names it in connection errors."""
        self._args, kwargs = engine.dialect.create_connect_args(engine.url)
        if session_options:
            kwargs = {**kwargs, "options": f"{kwargs.get('options', '')} {session_options}".strip()}
        self._kwargs = kwargs
        self._application_name = application_name
        self._max_idle = max_idle
        self._database = database
        self._idle: list[psycopg.Cursor[Any]] = []
        self._lock = threading.Lock()
        self._closed = False
        fork_safety.reset_in_child(self, PgCursors._forget_inherited)

    @property
    def database(self) -> str:
        """Which database these cursors reach ("tracking", "registry"), as errors name it."""
        return self._database

    def connect(self, **options: Any) -> psycopg.Connection[Any]:
        """A new autocommit connection, made as the engine makes its own; ``options`` (libpq
        parameters) apply unless the store URI sets them."""
        kwargs = {"application_name": self._application_name, **options, **self._kwargs}
        return psycopg.connect(*self._args, **kwargs, autocommit=True, prepare_threshold=0)

    def take(self) -> tuple[psycopg.Cursor[Any], bool]:
        """An idle cursor, and whether it was reused (False: freshly connected); a database that
        cannot be reached raises TemporarilyUnavailable."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                cursor = self._idle.pop()
            if connection_alive(cursor.connection):
                return cursor, True
            cursor.connection.close()  # the server ended it (a restart): try the next one
        try:
            return self.connect().cursor(), False
        except psycopg.OperationalError as exc:
            raise database_unavailable(self._database, exc) from exc

    def give_back(self, cursor: psycopg.Cursor[Any]) -> None:
        conn = cursor.connection
        reusable = not conn.broken and conn.info.transaction_status == _IDLE
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(cursor)
                return
        conn.close()

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor for the block; connection errors become TemporarilyUnavailable."""
        cursor, _ = self.take()
        try:
            # A call that ends (client gone, deadline passed) cancels its statement.
            with cancellable(cursor.connection.cancel):
                yield cursor
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if cursor.connection.broken:
                self.drop_idle()  # they most likely died with this one (a server restart)
            raise database_unavailable(self._database, exc) from exc
        finally:
            self.give_back(cursor)

    def _forget_inherited(self) -> None:
        """In a forked child: the idle connections are the parent's sessions."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._idle = []

    def drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for cursor in idle:
            cursor.connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.drop_idle()


def connection_alive(conn: Any) -> bool:
    """False for an idle connection the server has ended: PostgreSQL says nothing unasked to an
    idle connection except that it is terminating it, so anything readable (or a closed socket)
    means the connection is gone. One poll, no round trip; after a server restart it keeps the
    first call from failing on a stale connection."""
    if conn.closed or conn.broken:
        return False
    try:
        poller = select.poll()  # not select.select: it fails for descriptors past 1023
        poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False
