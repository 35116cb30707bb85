"""A metric point (key, value, timestamp, step) is stored once per run, however often it is
logged and by whichever path, as MLflow does: a client that retries a call does not double-count.
Existing duplicates are removed by the migration that brings the unique index."""

from __future__ import annotations

import math
from pathlib import Path

import sqlalchemy as sa

from mlgrid.api.common.v1 import common_pb2
from mlgrid_services.common.sql import make_engine
from mlgrid_services.tracking import migrations
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store import open_store
from mlgrid_services.tracking.store.series import metric_series

from .helpers import metric, metrics_of, new_run


def history(domain: TrackingDomain, run_id: str, key: str) -> list[tuple[int, int, float]]:
    points, _ = domain.get_metric_history(run_id, key, 0, "")
    return [(p.step, p.timestamp, p.value) for p in points]


def test_log_metric_retried_stores_the_point_once(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    for _ in range(3):
        domain.log_metric(run_id, metric("loss", 0.5, 10, 1))
    domain.log_metric(run_id, metric("loss", 0.25, 10, 1))  # another value: another point
    assert history(domain, run_id, "loss") == [(1, 10, 0.25), (1, 10, 0.5)]


def test_batches_retried_store_each_point_once(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    one_key = [metric("a", float(s), 100 + s, s) for s in range(5)]
    several_keys = [metric("b", 1.0, 7, 0), metric("c", 2.0, 7, 0)]
    with_tags = [metric("d", 3.0, 8, 0)]
    for _ in range(2):
        domain.log_batch(run_id, one_key, [], [])
        domain.log_batch(run_id, several_keys, [], [])
        domain.log_batch(run_id, with_tags, [], [common_pb2.Tag(key="t", value="v")])
    assert history(domain, run_id, "a") == [(s, 100 + s, float(s)) for s in range(5)]
    assert history(domain, run_id, "b") == [(0, 7, 1.0)]
    assert history(domain, run_id, "c") == [(0, 7, 2.0)]
    assert history(domain, run_id, "d") == [(0, 8, 3.0)]
    # Points logged once by log_metric and again inside a batch are the same points too.
    domain.log_metric(run_id, metric("a", 4.0, 104, 4))
    assert len(history(domain, run_id, "a")) == 5


def test_nan_retried_is_stored_once(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_metric(run_id, metric("n", math.nan, 5, 0))
    domain.log_batch(run_id, [metric("n", math.nan, 5, 0)], [], [])
    points = history(domain, run_id, "n")
    assert len(points) == 1 and math.isnan(points[0][2])
    assert math.isnan(metrics_of(domain.get_run(run_id))["n"].value)


def _migrate_duplicates_away(uri: str) -> None:
    migrations.upgrade(uri, "0002_metric_series")
    engine = make_engine(uri)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs VALUES ('r1', 'n', 0, 'u', 'RUNNING', 0, NULL, 'x', 'active', "
                ":false)"
            ),
            {"false": False},
        )
        conn.execute(
            # Core, not SQL text: quoting differs between the databases ("key", "timestamp").
            sa.table(
                "metrics",
                *(sa.column(c) for c in ("run_uuid", "key", "step", "timestamp", "value")),
                *(sa.column(c) for c in ("is_nan", "series")),
            ).insert(),
            [
                {
                    "run_uuid": "r1",
                    "timestamp": 5,
                    "key": key,
                    "step": step,
                    "value": value,
                    "is_nan": nan,
                    "series": metric_series("r1", key),
                }
                for key, step, value, nan, copies in [
                    ("loss", 1, 0.5, False, 3),
                    ("loss", 1, 0.0, True, 2),
                    ("loss", 2, 0.5, False, 1),
                    ("acc", 1, 0.5, False, 2),
                ]
                for _ in range(copies)
            ],
        )
    engine.dispose()
    store = open_store(uri, "file:///tmp/mlgrid-tracking-tests")
    loss, _ = store.get_metric_history("r1", "loss", 0, "")
    assert [(m.step, m.value) for m in loss][1:] == [(1, 0.5), (2, 0.5)]
    assert len(loss) == 3 and math.isnan(loss[0].value)
    acc, _ = store.get_metric_history("r1", "acc", 0, "")
    assert [(m.step, m.value) for m in acc] == [(1, 0.5)]
    store.log_metric("r1", metric("acc", 0.5, 5, 1))  # and it stays one point
    assert len(store.get_metric_history("r1", "acc", 0, "")[0]) == 1
    store.close()


def test_migration_removes_stored_duplicates_on_sqlite(tmp_path: Path) -> None:
    _migrate_duplicates_away(f"sqlite:///{tmp_path / 'dups.db'}")


def test_migration_removes_stored_duplicates_on_postgres(fresh_postgres_url: str) -> None:
    _migrate_duplicates_away(fresh_postgres_url)


def test_migration_removes_stored_duplicates_on_mysql(fresh_mysql_url: str) -> None:
    _migrate_duplicates_away(fresh_mysql_url)
