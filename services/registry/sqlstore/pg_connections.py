"""The registry's pooled autocommit psycopg connections for the fast paths of pgfast.py.

Connections: made like the engine's own (same URL and connect arguments), autocommit, statements
prepared on first use (``prepare_threshold=0``). Idle ones wait in a small free list; a connection
that failed or was left inside a transaction is closed instead of reused. Kept apart from
pgfast.py so that a store on SQLite or MySQL (the SDK's embedded default) never loads psycopg.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine

from mlgrid_services.common.durability import pg_session_options
from mlgrid_services.common.pg_cursors import PgCursors

#: Idle connections kept for reuse (half the gRPC server's worker threads); more may be open at
#: once while calls overlap, each worker thread holding at most one.
MAX_IDLE = 16
#: How these connections show in pg_stat_activity.
APPLICATION_NAME = "mlgrid-registry"


class PgConnections(PgCursors):
    """The registry's pooled autocommit cursors (services/common/pg_cursors.py)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(
            engine,
            max_idle=MAX_IDLE,
            application_name=APPLICATION_NAME,
            # The engine's durability policy (services/common/durability.py) on these too.
            session_options=pg_session_options(str(engine.url)),
            database="registry",
        )

    def fetchone(
        self, sql: str, params: dict[str, Any], *, idempotent: bool = True
    ) -> tuple[Any, ...] | None:
        """The first row of ``sql`` (None for none). A read (``idempotent``) that finds its reused
        connection dead, e.g. after a PostgreSQL restart, runs once more on a new one; a write
        never does, since it may have committed before the connection died."""
        cursor, reused = self.take()
        try:
            return cursor.execute(sql, params).fetchone()
        except psycopg.OperationalError:
            if not cursor.connection.broken:
                raise
            self.drop_idle()  # they most likely died with this one
            if not (reused and idempotent):
                raise
        finally:
            self.give_back(cursor)
        cursor, _ = self.take()
        try:
            return cursor.execute(sql, params).fetchone()
        finally:
            self.give_back(cursor)
