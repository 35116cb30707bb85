"""A long history read on PostgreSQL over several connections (store/pg_history.py) is every
stored point once, in (step, timestamp, value) order, as of the moment the read began, whatever
the spacing of its steps; a read stopped early gives its connections back. Small chunk sizes
make a history of a few hundred points take the striped path."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
import pytest

from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.store.tracking_store import HistoryColumns
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store import pg_history
from mlgrid_services.tracking.store.series import metric_series
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .helpers import metric, new_run

Point = tuple[int, int, object]


def _log(domain: TrackingDomain, run_id: str, points: list[t.Metric]) -> None:
    for first in range(0, len(points), 1000):
        domain.log_batch(run_id, points[first : first + 1000], [], [])


def _read(chunks: Iterable[HistoryColumns]) -> list[Point]:
    return [
        (step, timestamp, "NaN" if math.isnan(value) else value)
        for chunk in chunks
        for step, timestamp, value in zip(chunk.steps, chunk.timestamps, chunk.values, strict=True)
    ]


def _expected(points: list[t.Metric]) -> list[Point]:
    """What a reader must get: each distinct point once, in the stored order (a NaN is stored
    as 0.0 marked NaN, after a real 0.0 at the same step and time)."""
    stored = {(p.step, p.timestamp, 0.0 if math.isnan(p.value) else p.value, math.isnan(p.value))
              for p in points}  # fmt: skip
    return [(s, ts, "NaN" if nan else v) for s, ts, v, nan in sorted(stored)]


def _uneven_points() -> list[t.Metric]:
    """Dense steps, a run of one step, a huge gap, sparse steps, negatives, NaN: stripe widths
    learnt from one part are wrong for the next."""
    points = [metric("h", step * 0.5, 1_000 + step, step) for step in range(300)]
    points += [metric("h", 1.0, 2_000 + step, step) for step in range(0, 300, 7)]  # same step
    points += [metric("h", float(i), i, 10**6) for i in range(120)]  # 120 points at one step
    points += [metric("h", math.nan, 5, 10**6), metric("h", 0.0, 5, 10**6)]
    points += [metric("h", -float(i), 9, 10**12 + i * 997) for i in range(150)]  # sparse
    points += [metric("h", 3.0, 1, -(2**40) + i) for i in range(40)]  # far below zero
    points += [metric("h", 7.0, 2**62, 2**62)]
    return points


@pytest.mark.parametrize("chunk_size", [3, 16, 64, 1000])
def test_uneven_history_is_every_point_once_in_order(
    postgres_store: SqlTrackingStore, chunk_size: int
) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    points = _uneven_points()
    _log(domain, run_id, points[::-1])  # logged backwards: storage order is not read order
    chunks = list(postgres_store.iter_metric_history_columns(run_id, "h", chunk_size))
    assert all(0 < len(c.steps) <= chunk_size for c in chunks)
    assert _read(chunks) == _expected(points)
    assert len(_expected(points)) == 300 + 43 + 122 + 150 + 40 + 1


def test_every_point_at_one_step(postgres_store: SqlTrackingStore) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    points = [metric("h", float(i % 13), 10_000 - i, 0) for i in range(500)]  # MLflow's step 0
    _log(domain, run_id, points)
    chunks = list(postgres_store.iter_metric_history_columns(run_id, "h", 32))
    assert _read(chunks) == _expected(points)
    assert [len(c.steps) for c in chunks] == [32] * 15 + [20]


def test_points_logged_during_a_read_are_not_in_it(postgres_store: SqlTrackingStore) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    points = [metric("h", float(step), 1_000, step) for step in range(2_000)]
    _log(domain, run_id, points)
    stream = postgres_store.iter_metric_history_columns(run_id, "h", 10)
    got = _read([next(stream)])
    # Into stripes not read yet (at most a few of ten points ahead), and after the end.
    _log(domain, run_id, [metric("h", -1.0, 5, 1_500), metric("h", -1.0, 5, 5_000)])
    got += _read(stream)
    assert got == _expected(points)
    everything = _read(postgres_store.iter_metric_history_columns(run_id, "h", 10))
    assert len(everything) == 2_002 and (1_500, 5, -1.0) in everything


def test_a_read_stopped_early_gives_its_connections_back(
    postgres_store: SqlTrackingStore,
) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    _log(domain, run_id, [metric("h", 1.0, 1, step) for step in range(3_000)])
    pool = postgres_store.engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    stream = postgres_store.iter_metric_history_columns(run_id, "h", 10)
    for _ in range(5):
        next(stream)
    assert pool.checkedout() > before  # type: ignore[attr-defined]  # the readers are at work
    stream.close()  # what a cancelled call does to the service's generator
    assert pool.checkedout() == before  # type: ignore[attr-defined]
    assert not [th for th in threading.enumerate() if th.name.startswith("history-stripes")]
    assert _free_stripe_connections() == pg_history.MAX_STRIPE_CONNECTIONS


def _free_stripe_connections() -> int:
    slots, free = pg_history._stripe_connections, 0
    while slots.acquire(blocking=False):
        free += 1
    for _ in range(free):
        slots.release()
    return free


def test_an_unknown_run_is_refused_before_any_point(postgres_store: SqlTrackingStore) -> None:
    with pytest.raises(Exception, match="not found"):
        next(postgres_store.iter_metric_history_columns("0" * 32, "h", 10))


def test_with_every_stripe_connection_busy_a_read_goes_on_alone(
    postgres_store: SqlTrackingStore,
) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    points = [metric("h", float(step), 7, step) for step in range(1_000)]
    _log(domain, run_id, points)
    slots = pg_history._stripe_connections
    held = 0
    while slots.acquire(blocking=False):  # as if other long reads held them all
        held += 1
    assert held == pg_history.MAX_STRIPE_CONNECTIONS
    try:
        stream = postgres_store.iter_metric_history_columns(run_id, "h", 10)
        got = _read([next(stream), next(stream)])
        assert not [th for th in threading.enumerate() if th.name.startswith("history-stripes")]
        got += _read(stream)
    finally:
        for _ in range(held):
            slots.release()
    assert got == _expected(points)
    # Released by each read: a read now takes its stripe connections again.
    assert _read(postgres_store.iter_metric_history_columns(run_id, "h", 10)) == _expected(points)
    assert _free_stripe_connections() == pg_history.MAX_STRIPE_CONNECTIONS


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_a_vacuumed_history_is_read_from_the_index_alone_and_metrics_are_vacuumed_often(
    postgres_store: SqlTrackingStore, postgres_url: str
) -> None:
    """Migration 0006 has autovacuum visit the metrics table after every million new points, so
    the histories being read are marked all-visible, and a chunk of one then never visits the
    table (Heap Fetches: 0): that is what the setting buys."""
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    _log(domain, run_id, [metric("m", float(i), 10 + i, i) for i in range(2000)])
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as conn:
        row = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = CAST('metrics' AS regclass)"
        ).fetchone()
        assert row is not None
        assert {"autovacuum_vacuum_insert_scale_factor=0",
                "autovacuum_vacuum_insert_threshold=1000000"} <= set(row[0])  # fmt: skip
        conn.execute("VACUUM metrics")
        params = {"series": metric_series(run_id, "m"), "run_id": run_id, "key": "m",
                  **pg_history.BEFORE_ALL, "last_step": 1999, "limit": 1000}  # fmt: skip
        row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + pg_history.CHUNK, params).fetchone()
    assert row is not None
    nodes = list(_plan_nodes(row[0][0]["Plan"]))
    scans = [node for node in nodes if "Scan" in node["Node Type"]]
    assert [(s["Node Type"], s["Index Name"], s["Heap Fetches"]) for s in scans] == [
        ("Index Only Scan", "uq_metrics_point", 0)
    ]
    assert scans[0]["Actual Rows"] == 1000
