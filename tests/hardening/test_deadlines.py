"""A call whose client gives up, or whose deadline passes, stops its SQL in the database.

A real gRPC server (the services' bootstrap, so the same interceptors) serves a method that
runs a long statement on the real PostgreSQL, through both ways the stores reach it: the
pooled autocommit cursors and a SQLAlchemy engine; on SQLite a long recursive query. The test
watches the database itself (pg_stat_activity) for the statement to go away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import psycopg
import pytest
from sqlalchemy import text

from mlgrid_services.common.pg_cursors import PgCursors
from mlgrid_services.common.server import start_server
from mlgrid_services.common.sql import make_engine

#: A statement that runs far longer than any test: it must be cancelled to end.
LONG_SQL = "SELECT pg_sleep(60) /* mlgrid-deadline-test */"
SQLITE_LONG_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
)


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, work: Callable[[], None]) -> None:
        self.work = work
        self.finished = threading.Event()
        self.error: list[BaseException] = []

    def service(self, handler_call_details):
        def run(request: bytes, context) -> bytes:
            try:
                self.work()
            except BaseException as exc:
                self.error.append(exc)
                raise
            finally:
                self.finished.set()
            return b""

        return grpc.unary_unary_rpc_method_handler(run)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[], None]], tuple[Callable[..., object], _Handler]]]:
    servers = []

    def start(work: Callable[[], None]):
        handler = _Handler(work)
        running = start_server([], generic_handlers=[handler])
        servers.append(running)
        channel = grpc.insecure_channel(running.address)
        return channel.unary_unary("/test.Slow/Run"), handler

    yield start
    for running in servers:
        running.stop(0)


def _long_statements(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
            "AND pid <> pg_backend_pid()",
            ("%mlgrid-deadline-test%",),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_deadline_cancels_a_pooled_cursor_statement(serve, postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    cursors = PgCursors(engine, max_idle=2, application_name="deadline-test", database="test")

    def work() -> None:
        with cursors.cursor() as cursor:
            cursor.execute(LONG_SQL)

    call, handler = serve(work)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        call(b"", timeout=1.0)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The statement is gone from the database soon after the deadline, and the worker is free.
    assert handler.finished.wait(5.0), "the handler still waits on its statement"
    assert time.monotonic() - started < 6.0
    assert _wait_for(lambda: _long_statements(_plain(postgres_url)) == 0, 3.0)
    cursors.close()
    engine.dispose()


def test_client_cancel_cancels_an_engine_statement(serve, postgres_url: str) -> None:
    engine = make_engine(postgres_url)

    def work() -> None:
        with engine.connect() as conn:
            conn.execute(text(LONG_SQL))

    call, handler = serve(work)
    future = call.future(b"", timeout=30.0)
    assert _wait_for(lambda: _long_statements(_plain(postgres_url)) == 1, 5.0)
    future.cancel()
    assert handler.finished.wait(5.0), "the handler still waits on its statement"
    assert _wait_for(lambda: _long_statements(_plain(postgres_url)) == 0, 3.0)
    # The pool's connection is usable again.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_deadline_interrupts_a_sqlite_statement(serve, tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'slow.db'}")

    def work() -> None:
        with engine.connect() as conn:
            conn.execute(text(SQLITE_LONG_SQL))

    call, handler = serve(work)
    with pytest.raises(grpc.RpcError) as info:
        call(b"", timeout=1.0)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert handler.finished.wait(5.0), "the handler still runs its query"
    assert handler.error and "interrupted" in str(handler.error[0])
    engine.dispose()
