"""Metric messages turned into stored points (the same on every database and path), and the
Core statements the write paths share. Used by sql_writes.WritesMixin and pg_fast.PgFastPaths.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import sqlalchemy as sa

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.store.tracking_store import MetricBatch

from . import schema as t
from .series import metric_series

#: (key, step, timestamp, value, is_nan) as stored.
Point = tuple[str, int, int, float, bool]


SELECT_PARAMS = sa.select(t.params.c.key, t.params.c.value).where(
    t.params.c.run_uuid == sa.bindparam("run_id"),
    t.params.c.key.in_(sa.bindparam("keys", expanding=True)),
)


def metric_columns(
    metrics: Sequence[tracking_pb2.Metric],
) -> tuple[Sequence[str], Sequence[int], Sequence[int], Sequence[float]]:
    """Keys, steps, timestamps and values of ``metrics``: read by the domain already when it
    hands over a MetricBatch, else read here in one pass."""
    if isinstance(metrics, MetricBatch):
        return metrics.keys, metrics.steps, metrics.timestamps, metrics.values
    if not metrics:
        return (), (), (), ()
    keys, steps, timestamps, values = zip(
        *[(m.key, m.step, m.timestamp, m.value) for m in metrics], strict=True
    )
    return keys, steps, timestamps, values


def stored_points(metrics: Sequence[tracking_pb2.Metric]) -> list[Point]:
    """Rows to insert; exact duplicates within the call are dropped (as MLflow does)."""
    # One comprehension (C-level loop); NaN (v != v) cannot be stored by SQLite: keep the flag
    # and a 0.
    points = [
        (k, s, ts, v, False) if v == v else (k, s, ts, 0.0, True)
        for k, s, ts, v in zip(*metric_columns(metrics), strict=True)
    ]
    if len(points) > 1:
        points = list(dict.fromkeys(points))
    return points


_ORDER = operator.itemgetter(1, 2, 3)


def latest_per_key(points: Sequence[Point]) -> list[Point]:
    """Each key's greatest (step, timestamp, value) point of this batch: one upsert row per key
    (PostgreSQL refuses to update one row twice in a statement)."""
    if len({point[0] for point in points}) == 1:
        return [max(points, key=_ORDER)]  # the usual batch: one key; max() keeps the first tie
    best: dict[str, Point] = {}
    for point in points:
        current = best.get(point[0])
        if current is None or point[1:4] > current[1:4]:
            best[point[0]] = point
    return list(best.values())


def series_numbers(run_id: str, points: Sequence[Point]) -> list[int]:
    """Each point's metric_series (one hash per distinct key)."""
    numbers = {key: metric_series(run_id, key) for key in {point[0] for point in points}}
    return [numbers[point[0]] for point in points]


def param_conflict(run_id: str, key: str, old: str, new: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Changing param values is not allowed. Param with key={key!r} was already logged with "
        f"value={old[:100]!r} for run ID={run_id!r}. Attempted logging new value {new[:100]!r}."
    )
