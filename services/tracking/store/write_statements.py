"""The write paths' statements and their parameters: PostgreSQL statement texts (each call one
autocommitted statement: a batch of metric points is one ``INSERT … SELECT FROM unnest(binary
arrays)``), the Core statements of the transactional paths, and the turning of metric messages
into stored points and statement parameters. Used by sql_writes.WritesMixin.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.store.tracking_store import MetricBatch

from . import schema as t
from .pg_binary import bool_array, float8_array, int8_array
from .series import metric_series

#: (key, step, timestamp, value, is_nan) as stored.
Point = tuple[str, int, int, float, bool]


_LATEST_ARRAYS = (
    "SELECT * FROM unnest(CAST(%(lkeys)s AS varchar[]), %(lsteps)s, %(ltimestamps)s, %(lvals)s,"
    " %(lnans)s)"
)


def _points_statement(points: str, latest: str = _LATEST_ARRAYS) -> str:
    """Metric points in ONE statement (one round trip, autocommit): check the run, append the
    points not stored yet, move each key's latest point forward. The inserts only happen when the run is
    active; the answer (the run's stage, or no row) tells the caller what to report.

    ``points`` is the SELECT giving the rows (key, step, timestamp, value, is_nan, series),
    ``latest`` the one giving each key's latest point (key, step, timestamp, value, is_nan).
    Batches send steps, timestamps, values, NaN flags and series as binary arrays (pg_binary),
    keys as a text array.
    """
    return (
        "WITH run AS (SELECT lifecycle_stage FROM runs"
        " WHERE run_uuid = CAST(%(run_id)s AS varchar)), "
        "ok AS (SELECT 1 FROM run WHERE lifecycle_stage = 'active'), "
        "ins AS ("
        ' INSERT INTO metrics (run_uuid, key, step, "timestamp", value, is_nan, series)'
        " SELECT CAST(%(run_id)s AS varchar), p.k, p.s, p.ts, p.v, p.n, p.h"
        f" FROM ({points}) AS p(k, s, ts, v, n, h) WHERE EXISTS (SELECT 1 FROM ok)"
        # A point already stored (a retried call) is stored once (uq_metrics_point).
        " ON CONFLICT DO NOTHING), "
        "up AS ("
        ' INSERT INTO latest_metrics (run_uuid, key, step, "timestamp", value, is_nan)'
        " SELECT CAST(%(run_id)s AS varchar), u.k, u.s, u.ts, u.v, u.n"
        f" FROM ({latest}) AS u(k, s, ts, v, n) WHERE EXISTS (SELECT 1 FROM ok)"
        " ON CONFLICT (run_uuid, key) DO UPDATE SET step = EXCLUDED.step,"
        ' "timestamp" = EXCLUDED."timestamp", value = EXCLUDED.value, is_nan = EXCLUDED.is_nan'
        ' WHERE (latest_metrics.step, latest_metrics."timestamp", latest_metrics.value)'
        ' < (EXCLUDED.step, EXCLUDED."timestamp", EXCLUDED.value)) '
        "SELECT lifecycle_stage FROM run"
    )


#: Any points: every column an array.
PG_POINTS_ONE_SHOT = _points_statement(
    "SELECT * FROM unnest(CAST(%(keys)s AS varchar[]), %(steps)s, %(timestamps)s, %(vals)s,"
    " %(nans)s, %(series)s)"
)

#: The usual batch (one key, no NaN): key, flag and series are single values, which spares
#: the server parsing three arrays of 1,000 equal elements (~15% of the statement's CPU).
_PG_ONE_KEY_POINTS = _points_statement(
    "SELECT CAST(%(key)s AS varchar), u.s, u.ts, u.v, false, CAST(%(series)s AS bigint)"
    " FROM unnest(%(steps)s, %(timestamps)s, %(vals)s) AS u(s, ts, v)"
)

_ONE_POINT = (
    "SELECT CAST(%(key)s AS varchar), CAST(%(step)s AS bigint), CAST(%(timestamp)s AS bigint),"
    " CAST(%(value)s AS float8), CAST(%(nan)s AS boolean)"
)

#: log_metric: one point, every column a single value (no arrays to build or parse).
PG_ONE_POINT = _points_statement(
    _ONE_POINT.replace("AS boolean)", "AS boolean), CAST(%(series)s AS bigint)"),
    _ONE_POINT,
)

#: Params of a params-only batch in ONE autocommitted statement: check the run, read the keys
#: already stored, insert the others, all only if the run is active and no stored value differs.
#: A plain INSERT (no ON CONFLICT): a racing writer's key, committed after this statement's
#: snapshot, fails the whole statement with a unique violation (nothing written), and the
#: caller then takes the transactional path, which sees that row and compares values.
PG_PARAMS_ONE_SHOT = (
    "WITH run AS (SELECT lifecycle_stage FROM runs WHERE run_uuid = CAST(%(run_id)s AS varchar)), "
    "given AS (SELECT u.k, u.v FROM unnest(CAST(%(keys)s AS varchar[]),"
    " CAST(%(vals)s AS varchar[])) AS u(k, v)), "
    "stored AS (SELECT p.key, p.value FROM params p"
    " WHERE p.run_uuid = CAST(%(run_id)s AS varchar) AND p.key IN (SELECT k FROM given)), "
    "ins AS ("
    " INSERT INTO params (run_uuid, key, value)"
    " SELECT CAST(%(run_id)s AS varchar), given.k, given.v FROM given"
    " WHERE EXISTS (SELECT 1 FROM run WHERE lifecycle_stage = 'active')"
    " AND NOT EXISTS (SELECT 1 FROM stored JOIN given ON stored.key = given.k"
    " WHERE stored.value <> given.v)"
    " AND given.k NOT IN (SELECT key FROM stored)) "
    "SELECT (SELECT lifecycle_stage FROM run), ARRAY(SELECT key FROM stored),"
    " ARRAY(SELECT value FROM stored)"
)

#: Params in one cached statement (a multi-row VALUES is compiled anew on every call); RETURNING
#: names the rows written, so only keys that already existed need a look at their stored value.
PG_INSERT_PARAMS = sa.text(
    "INSERT INTO params (run_uuid, key, value) SELECT :run_id, u.k, u.v FROM unnest("
    "CAST(:keys AS varchar[]), CAST(:vals AS varchar[])) AS u(k, v) "
    "ON CONFLICT DO NOTHING RETURNING key"
)

PG_UPSERT_TAGS = sa.text(
    "INSERT INTO tags (run_uuid, key, value) SELECT :run_id, u.k, u.v FROM unnest("
    "CAST(:keys AS varchar[]), CAST(:vals AS varchar[])) AS u(k, v) "
    "ON CONFLICT (run_uuid, key) DO UPDATE SET value = EXCLUDED.value"
)

SELECT_PARAMS = sa.select(t.params.c.key, t.params.c.value).where(
    t.params.c.run_uuid == sa.bindparam("run_id"),
    t.params.c.key.in_(sa.bindparam("keys", expanding=True)),
)


def _columns(
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
        for k, s, ts, v in zip(*_columns(metrics), strict=True)
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


def _pg_columns(points: Sequence[Point], prefix: str = "") -> dict[str, Any]:
    """The columns of ``points`` as statement parameters: keys as a text array literal, the
    rest as binary arrays (pg_binary). Keys are validated to [A-Za-z0-9_ ./:-] (nothing to
    quote or escape in the literal)."""
    keys, steps, timestamps, values, nans = zip(*points, strict=True)
    return {
        f"{prefix}keys": '{"' + '","'.join(keys) + '"}',
        f"{prefix}steps": int8_array(steps),
        f"{prefix}timestamps": int8_array(timestamps),
        f"{prefix}vals": float8_array(values),
        f"{prefix}nans": bool_array(nans),
    }


def pg_points_statement(
    run_id: str, metrics: Sequence[tracking_pb2.Metric]
) -> tuple[str, dict[str, Any]]:
    """The statement writing ``metrics`` (a non-empty batch) and its parameters."""
    keys, steps, timestamps, values = _columns(metrics)
    total = sum(values)
    count = len(keys)
    # The usual batch, told apart by C-level checks: one key, no NaN (one makes the sum NaN) and
    # distinct steps, so no exact duplicate to drop and the latest point has the greatest step.
    if total == total and len(set(keys)) == 1 and len(set(steps)) == count:
        last = steps.index(max(steps))
        latest = (keys[last], steps[last], timestamps[last], values[last], False)
        return _PG_ONE_KEY_POINTS, {
            "run_id": run_id,
            "key": keys[0],
            "steps": int8_array(steps),
            "timestamps": int8_array(timestamps),
            "vals": float8_array(values),
            "series": metric_series(run_id, keys[0]),
            **_pg_columns([latest], "l"),
        }
    return PG_POINTS_ONE_SHOT, pg_stored_points_params(run_id, stored_points(metrics))


def series_numbers(run_id: str, points: Sequence[Point]) -> list[int]:
    """Each point's metric_series (one hash per distinct key)."""
    numbers = {key: metric_series(run_id, key) for key in {point[0] for point in points}}
    return [numbers[point[0]] for point in points]


def pg_stored_points_params(run_id: str, points: Sequence[Point]) -> dict[str, Any]:
    """Parameters of PG_POINTS_ONE_SHOT for points already deduplicated (stored_points)."""
    return {
        "run_id": run_id,
        **_pg_columns(points),
        "series": int8_array(series_numbers(run_id, points)),
        **_pg_columns(latest_per_key(points), "l"),
    }


def param_conflict(run_id: str, key: str, old: str, new: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Changing param values is not allowed. Param with key={key!r} was already logged with "
        f"value={old[:100]!r} for run ID={run_id!r}. Attempted logging new value {new[:100]!r}."
    )
