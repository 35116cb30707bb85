"""log_metric's statement through libpq directly (services/common/pg_raw.py): the same points,
errors and connection handling as through a psycopg cursor."""

from __future__ import annotations

import math
from collections.abc import Iterator

import psycopg
import pytest

from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.common.pg_raw import RawStatement
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .helpers import metric, metrics_of, new_run

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture
def pg(postgres_store: SqlTrackingStore) -> TrackingDomain:
    return TrackingDomain(postgres_store)


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as connection:
        yield connection


def test_single_points_keep_extreme_values_exactly(pg: TrackingDomain) -> None:
    run_id = new_run(pg).info.run_id
    values = [-0.0, 5e-324, 1e308, -1.7976931348623157e308, 0.1 + 0.2, 1 / 3]
    for i, value in enumerate(values):
        pg.log_metric(run_id, metric("x", value, timestamp=INT64_MAX - i, step=INT64_MIN + i))
    pg.log_metric(run_id, metric("n", math.nan, timestamp=1, step=0))
    pg.log_metric(run_id, metric("n", math.inf, timestamp=2, step=1))  # the domain clamps it

    points, _ = pg.get_metric_history(run_id, "x", 0, "")
    got = [(p.step, p.timestamp, p.value) for p in points]
    assert got == [(INT64_MIN + i, INT64_MAX - i, v) for i, v in enumerate(values)]
    assert math.copysign(1, got[0][2]) == -1  # -0.0 kept its sign
    nan, big = pg.get_metric_history(run_id, "n", 0, "")[0]
    assert math.isnan(nan.value) and big.value == 1.7976931348623157e308
    latest = metrics_of(pg.get_run(run_id))
    assert latest["x"].value == 1 / 3 and latest["n"].value == 1.7976931348623157e308


def test_a_point_for_a_missing_run_is_refused_by_name(pg: TrackingDomain) -> None:
    with pytest.raises(ResourceDoesNotExist, match="f" * 32):
        pg.log_metric("f" * 32, metric("x", 1.0))


def test_the_statement_is_prepared_once_per_connection(
    pg: TrackingDomain, postgres_store: SqlTrackingStore
) -> None:
    run_id = new_run(pg).info.run_id
    for step in range(5):
        pg.log_metric(run_id, metric("x", float(step), step=step))
    fast = postgres_store._fast
    assert fast is not None
    cursor, _ = fast.cursors.take()
    try:
        prepared = cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = 'mlgrid_log_metric'"
        ).fetchone()
    finally:
        fast.cursors.give_back(cursor)
    assert prepared == (1,)


def test_answers_come_back_as_text_and_no_row_as_none(conn: psycopg.Connection) -> None:
    statement = RawStatement(
        "test_raw_text",
        "SELECT CAST(%(a)s AS bigint) + 1, CAST(%(b)s AS varchar), CAST(%(c)s AS boolean),"
        " CAST(%(d)s AS float8), CAST(%(a)s AS bigint), NULL",
    )
    row = statement.run(conn, {"a": 41, "b": "é", "c": True, "d": 0.1, "unused": 1})
    assert row == ("42", "é", "t", "0.1", "41", None)
    none = RawStatement("test_raw_none", "SELECT 1 WHERE CAST(%(a)s AS boolean)")
    assert none.run(conn, {"a": False}) is None
    null = RawStatement("test_raw_null", "SELECT CAST(%(a)s AS int) IS NULL")
    assert null.run(conn, {"a": None}) == ("t",)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_errors_are_psycopgs_own_and_leave_the_connection_usable(
    conn: psycopg.Connection,
) -> None:
    statement = RawStatement("test_raw_error", "SELECT 1 / CAST(%(n)s AS int)")
    with pytest.raises(psycopg.errors.DivisionByZero):
        statement.run(conn, {"n": 0})
    assert statement.run(conn, {"n": 1}) == ("1",)
    bad = RawStatement("test_raw_syntax", "SELEC %(n)s")
    with pytest.raises(psycopg.errors.SyntaxError):
        bad.run(conn, {"n": 1})
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_connection_killed_under_the_pool_is_dropped(
    pg: TrackingDomain, postgres_store: SqlTrackingStore, postgres_url: str
) -> None:
    run_id = new_run(pg).info.run_id
    pg.log_metric(run_id, metric("x", 1.0, step=0))
    fast = postgres_store._fast
    assert fast is not None
    cursor, _ = fast.cursors.take()
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (cursor.connection.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):
        RawStatement("test_raw_dead", "SELECT 1").run(cursor.connection, {})
    assert cursor.connection.broken
    fast.cursors.give_back(cursor)  # closed, not pooled again
    pg.log_metric(run_id, metric("x", 2.0, step=1))  # a fresh connection serves the next call
    assert metrics_of(pg.get_run(run_id))["x"].value == 2.0
