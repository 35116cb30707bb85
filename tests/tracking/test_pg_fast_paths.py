"""The PostgreSQL single-statement paths: binary metric arrays, the params-only statement and its
fallback when a racing writer gets in, and the autocommit connections' error handling."""

from __future__ import annotations

import math
import threading
import time

import psycopg
import pytest

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable
from mlgrid.store.tracking_store import MetricBatch
from mlgrid_services.tracking.domain import TrackingDomain, check_metrics
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .helpers import metric, metrics_of, new_run, params_of

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture
def pg(postgres_store: SqlTrackingStore) -> TrackingDomain:
    return TrackingDomain(postgres_store)


def history(domain: TrackingDomain, run_id: str, key: str) -> list[tuple[int, int, float]]:
    points, _ = domain.get_metric_history(run_id, key, 0, "")
    return [(p.step, p.timestamp, p.value) for p in points]


def test_binary_arrays_carry_extreme_values_exactly(pg: TrackingDomain) -> None:
    run_id = new_run(pg).info.run_id
    values = [-0.0, 5e-324, 1e308, -1.7976931348623157e308, 0.1, 1 / 3]
    batch = [
        metric("x", v, timestamp=INT64_MAX - i, step=INT64_MIN + i) for i, v in enumerate(values)
    ]
    pg.log_batch(run_id, batch, [], [])  # the one-key, no-NaN, distinct-steps fast path
    got = history(pg, run_id, "x")
    assert got == [(INT64_MIN + i, INT64_MAX - i, v) for i, v in enumerate(values)]
    assert math.copysign(1, got[0][2]) == -1  # -0.0 kept its sign
    latest = metrics_of(pg.get_run(run_id))["x"]
    assert (latest.step, latest.value) == (INT64_MIN + 5, 1 / 3)


def test_general_batches_drop_duplicates_and_keep_nan(pg: TrackingDomain) -> None:
    run_id = new_run(pg).info.run_id
    batch = [
        metric("a", 1.0, 5, 1),
        metric("a", 1.0, 5, 1),  # exact duplicate: dropped
        metric("a", 2.0, 6, 1),  # same step, later: kept, and the latest
        metric("b", math.nan, 7, 3),
        metric("b", 0.5, 7, 2),
    ]
    pg.log_batch(run_id, batch, [], [])
    assert history(pg, run_id, "a") == [(1, 5, 1.0), (1, 6, 2.0)]
    b = history(pg, run_id, "b")
    assert b[0] == (2, 7, 0.5) and b[1][:2] == (3, 7) and math.isnan(b[1][2])
    latest = metrics_of(pg.get_run(run_id))
    assert latest["a"].value == 2.0 and math.isnan(latest["b"].value)


def test_a_batch_with_infinities_is_clamped_in_the_columns_too() -> None:
    messages = [metric("m", math.inf, 1, 0), metric("m", -math.inf, 1, 1), metric("m", 2.0, 1, 2)]
    checked = check_metrics(messages)
    assert isinstance(checked, MetricBatch) and list(checked) == messages
    assert checked.values[0] == messages[0].value == 1.7976931348623157e308
    assert checked.values[1] == messages[1].value == -1.7976931348623157e308
    assert checked.values[2] == 2.0


def _param_held_by_another_transaction(
    store: SqlTrackingStore, run_id: str, key: str, value: str
) -> psycopg.Connection:
    url = store.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    other = psycopg.connect(url)
    other.execute(
        "INSERT INTO params (run_uuid, key, value) VALUES (%s, %s, %s)", (run_id, key, value)
    )
    return other  # uncommitted: our statement's insert of the key waits on it


def _log_params_while_racing(
    pg: TrackingDomain, store: SqlTrackingStore, racing_value: str
) -> tuple[str, object]:
    run_id = new_run(pg).info.run_id
    other = _param_held_by_another_transaction(store, run_id, "k", racing_value)
    outcome: list[object] = []

    def write() -> None:
        try:
            params = [
                tracking_pb2.Param(key="j", value="x"),
                tracking_pb2.Param(key="k", value="v"),
            ]
            pg.log_batch(run_id, [], params, [])
            outcome.append("ok")
        except Exception as exc:  # the test inspects it
            outcome.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.3)  # let the statement take its snapshot and block on the uncommitted key
    other.commit()
    other.close()
    writer.join(10)
    return run_id, outcome[0]


def test_a_racing_param_with_another_value_fails_the_whole_batch(
    pg: TrackingDomain, postgres_store: SqlTrackingStore
) -> None:
    run_id, outcome = _log_params_while_racing(pg, postgres_store, "theirs")
    assert isinstance(outcome, InvalidParameterValue)
    assert "Changing param values is not allowed" in str(outcome)
    assert params_of(pg.get_run(run_id)) == {"k": "theirs"}  # "j" was not written either


def test_a_racing_param_with_the_same_value_succeeds(
    pg: TrackingDomain, postgres_store: SqlTrackingStore
) -> None:
    run_id, outcome = _log_params_while_racing(pg, postgres_store, "v")
    assert outcome == "ok"
    assert params_of(pg.get_run(run_id)) == {"j": "x", "k": "v"}


def test_a_visible_param_conflict_writes_nothing(pg: TrackingDomain) -> None:
    run_id = new_run(pg).info.run_id
    pg.log_param(run_id, "k", "old")
    params = [tracking_pb2.Param(key="new", value="1"), tracking_pb2.Param(key="k", value="x")]
    with pytest.raises(InvalidParameterValue, match="value='old'"):
        pg.log_batch(run_id, [], params, [])
    assert params_of(pg.get_run(run_id)) == {"k": "old"}


def test_a_dead_connection_is_reported_as_unavailable_then_replaced(
    pg: TrackingDomain, postgres_store: SqlTrackingStore
) -> None:
    run_id = new_run(pg).info.run_id
    assert postgres_store._fast is not None
    with postgres_store._fast.cursors.cursor() as cursor:
        pid = cursor.connection.info.backend_pid
    url = postgres_store.engine.url.render_as_string(hide_password=False)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)
    # The call that meets the dead connection fails cleanly (retryable) and drops it; whichever
    # call comes next gets a live one.
    failures = 0
    for step in range(10):
        try:
            pg.log_metric(run_id, metric("m", 1.0, 1, step))
        except TemporarilyUnavailable:
            failures += 1
    assert failures <= 1
    assert len(history(pg, run_id, "m")) == 10 - failures
