"""Autocommit psycopg connections for the tracking store's hot single-statement paths.

log_metric, log_batch, create_run and search are each ONE statement on PostgreSQL. Through
SQLAlchemy every such call also paid for a Connection, an execution context, the compiled-cache
lookup, a Result and the isolation-level switch to autocommit and back: ~0.1 ms of CPU per call,
as much as the rest of the store. Here a call takes an idle connection and its cursor from a free
list, runs its statement (prepared by psycopg on first use) and hands them back.

Same database, same URL and connect arguments as the engine, and the same durability policy
(services/common/durability.py: durable commits unless the deployment opts out). A statement in autocommit is
its own transaction, so atomicity is the statement's. A connection that failed, or is left in any
state but idle, is closed rather than reused.
"""

from __future__ import annotations

from sqlalchemy import Engine

from mlgrid_services.common.durability import pg_session_options
from mlgrid_services.common.pg_cursors import PgCursors

#: Idle connections kept; more may be open while calls overlap (the gRPC pool bounds them).
MAX_IDLE = 8


class PgStatements(PgCursors):
    """Runs the tracking store's single statements on pooled autocommit connections."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(
            engine,
            max_idle=MAX_IDLE,
            application_name="mlgrid-tracking",
            # As make_engine sets up the engine's own connections.
            session_options=pg_session_options(str(engine.url)),
            database="tracking",
        )
