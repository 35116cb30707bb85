"""PostgreSQL's fast paths of the tracking store, behind one object (PgFastPaths).

Each kept path is ONE autocommitted statement on pooled psycopg connections outside SQLAlchemy,
committed together with concurrent writers (services/common/group_commit.py), and earns its place
in a bench/ phase:

| path | statement | bench phase |
|---|---|---|
| log_metric | PG_ONE_POINT: check the run, append the point, move the latest (calls queued together: one statement, _merge_points) | log_metric, concurrent_logging |
| metrics-only log_batch | ``INSERT … SELECT FROM unnest(binary arrays)`` (pg_binary) | log_batch |
| params-only log_batch, log_param | PG_PARAMS_ONE_SHOT | create_runs |
| create_run | _PG_CREATE_RUN: the run and its tags | create_runs |
| search_runs | the page statement compiled once per distinct request | search_runs |

Everything else takes the store's plain path, the same statements as on every other database.
tests/tracking/test_fast_path_equivalence.py checks that these return what the plain path returns
on generated data shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy import Engine

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid_services.common.group_commit import GroupCommit, Mergeable, Merged

from .pg_binary import bool_array, float8_array, int8_array
from .pg_conn import PgStatements
from .series import metric_series
from .write_statements import Point, latest_per_key, metric_columns, series_numbers, stored_points

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

#: The points of concurrent log_metric calls, on any runs, in ONE statement: as _points_statement
#: with the run a column of the points, and each run's stage in the answer (one row per run).
_PG_POINTS_OF_RUNS = (
    "WITH p AS (SELECT * FROM unnest(CAST(%(run_ids)s AS varchar[]), CAST(%(keys)s AS varchar[]),"
    " %(steps)s, %(timestamps)s, %(vals)s, %(nans)s, %(series)s) AS p(r, k, s, ts, v, n, h)), "
    "run AS (SELECT run_uuid, lifecycle_stage FROM runs WHERE run_uuid IN (SELECT r FROM p)), "
    "ok AS (SELECT run_uuid FROM run WHERE lifecycle_stage = 'active'), "
    "ins AS ("
    ' INSERT INTO metrics (run_uuid, key, step, "timestamp", value, is_nan, series)'
    " SELECT p.r, p.k, p.s, p.ts, p.v, p.n, p.h FROM p JOIN ok ON ok.run_uuid = p.r"
    " ON CONFLICT DO NOTHING), "
    "up AS ("
    ' INSERT INTO latest_metrics (run_uuid, key, step, "timestamp", value, is_nan)'
    " SELECT u.r, u.k, u.s, u.ts, u.v, u.n FROM unnest(CAST(%(lrun_ids)s AS varchar[]),"
    " CAST(%(lkeys)s AS varchar[]), %(lsteps)s, %(ltimestamps)s, %(lvals)s, %(lnans)s)"
    " AS u(r, k, s, ts, v, n) JOIN ok ON ok.run_uuid = u.r"
    " ON CONFLICT (run_uuid, key) DO UPDATE SET step = EXCLUDED.step,"
    ' "timestamp" = EXCLUDED."timestamp", value = EXCLUDED.value, is_nan = EXCLUDED.is_nan'
    ' WHERE (latest_metrics.step, latest_metrics."timestamp", latest_metrics.value)'
    ' < (EXCLUDED.step, EXCLUDED."timestamp", EXCLUDED.value)) '
    "SELECT run_uuid, lifecycle_stage FROM run"
)

_POINT_COLUMNS = ("run_id", "key", "step", "timestamp", "value", "nan", "series")


def _merge_points(calls: Sequence[Mapping[str, Any]]) -> Merged:
    """The points of several PG_ONE_POINT calls as one statement (group commit merges them)."""
    run_ids, keys, steps, timestamps, values, nans, series = zip(
        *[[call[name] for name in _POINT_COLUMNS] for call in calls], strict=True
    )
    # One upsert row per (run, key): its greatest (step, timestamp, value) point, in a fixed
    # order (the order concurrent statements take row locks in, so they cannot deadlock).
    latest: dict[tuple[str, str], tuple[int, int, float, bool]] = {}
    for run_id, key, step, timestamp, value, nan in zip(
        run_ids, keys, steps, timestamps, values, nans, strict=True
    ):
        current = latest.get((run_id, key))
        if current is None or (step, timestamp, value) > current[:3]:
            latest[(run_id, key)] = (step, timestamp, value, nan)
    order = sorted(latest)
    params = {
        "run_ids": list(run_ids),
        "keys": list(keys),
        "steps": int8_array(steps),
        "timestamps": int8_array(timestamps),
        "vals": float8_array(values),
        "nans": bool_array(nans),
        "series": int8_array(series),
        "lrun_ids": [run_id for run_id, _ in order],
        "lkeys": [key for _, key in order],
        "lsteps": int8_array([latest[rk][0] for rk in order]),
        "ltimestamps": int8_array([latest[rk][1] for rk in order]),
        "lvals": float8_array([latest[rk][2] for rk in order]),
        "lnans": bool_array([latest[rk][3] for rk in order]),
    }

    def answers(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...] | None]:
        stages = {run_id: stage for run_id, stage in rows}
        return [(stages[r],) if r in stages else None for r in run_ids]

    return Merged(_PG_POINTS_OF_RUNS, params, answers)


#: log_metric: one point, every column a single value (no arrays to build or parse). The
#: hottest statement of the service, so it runs through libpq directly (pg_raw); the calls that
#: group commit finds waiting together run as one statement (_merge_points).
PG_ONE_POINT = Mergeable(
    "mlgrid_log_metric",
    _points_statement(
        _ONE_POINT.replace("AS boolean)", "AS boolean), CAST(%(series)s AS bigint)"),
        _ONE_POINT,
    ),
    _merge_points,
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


_PG_CREATE_RUN = (
    "WITH e AS (SELECT experiment_id, lifecycle_stage, artifact_location FROM experiments"
    " WHERE experiment_id = %(experiment_id)s), "
    "r AS (INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time,"
    " end_time, artifact_uri, lifecycle_stage, deleted_with_experiment)"
    " SELECT CAST(%(run_id)s AS varchar), %(name)s, e.experiment_id, %(user_id)s, 'RUNNING',"
    " %(start_time)s, NULL,"
    " rtrim(e.artifact_location, '/') || '/' || CAST(%(run_id)s AS varchar) || '/artifacts',"
    " 'active', false"
    " FROM e WHERE e.lifecycle_stage = 'active' RETURNING artifact_uri), "
    "g AS (INSERT INTO tags (run_uuid, key, value)"
    " SELECT CAST(%(run_id)s AS varchar), u.k, u.v FROM unnest(CAST(%(tag_keys)s AS varchar[]),"
    " CAST(%(tag_values)s AS varchar[])) AS u(k, v) WHERE EXISTS (SELECT 1 FROM r)) "
    "SELECT e.lifecycle_stage, (SELECT artifact_uri FROM r) FROM e"
)

#: Distinct search requests whose compiled SQL is kept (the cache starts over when full).
SEARCH_SQL_CACHE_SIZE = 256


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
    keys, steps, timestamps, values = metric_columns(metrics)
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


def pg_stored_points_params(run_id: str, points: Sequence[Point]) -> dict[str, Any]:
    """Parameters of PG_POINTS_ONE_SHOT for points already deduplicated (stored_points)."""
    return {
        "run_id": run_id,
        **_pg_columns(points),
        "series": int8_array(series_numbers(run_id, points)),
        **_pg_columns(latest_per_key(points), "l"),
    }


class PgFastPaths:
    """The tracking store's PostgreSQL fast paths (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cursors = PgStatements(engine)
        self.commits = GroupCommit(self.cursors)
        self._search_sql: dict[tuple[Any, ...], tuple[str, dict[str, Any]] | None] = {}

    def close(self) -> None:
        self.cursors.close()

    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> str | None:
        """Writes one point; the run's stage (None: no such run; nothing written unless
        active)."""
        value = metric.value
        is_nan = value != value  # NaN is stored as 0 with its flag, as on the plain path
        row = self.commits.execute(
            PG_ONE_POINT,
            {
                "run_id": run_id,
                "key": metric.key,
                "step": metric.step,
                "timestamp": metric.timestamp,
                "value": 0.0 if is_nan else value,
                "nan": is_nan,
                "series": metric_series(run_id, metric.key),
            },
        )
        return None if row is None else row[0]

    def log_metrics(self, run_id: str, metrics: Sequence[tracking_pb2.Metric]) -> str | None:
        """Writes a non-empty batch of points; the run's stage, as log_metric."""
        row = self.commits.execute(*pg_points_statement(run_id, metrics))
        return None if row is None else row[0]

    def log_params(
        self, run_id: str, params: Sequence[tracking_pb2.Param]
    ) -> tuple[str | None, dict[str, str]] | None:
        """Writes ``params`` unless one is stored with another value: the run's stage and the
        values already stored for the given keys; None when a racing writer got in first
        (nothing was written: the caller takes the plain path)."""
        bound = {
            "run_id": run_id,
            "keys": [p.key for p in params],
            "vals": [p.value for p in params],
        }
        try:
            row = self.commits.execute(PG_PARAMS_ONE_SHOT, bound)
        except psycopg.errors.UniqueViolation:
            return None
        assert row is not None  # the outer SELECT always returns one row
        stage, stored_keys, stored_values = row
        return stage, dict(zip(stored_keys, stored_values, strict=True))

    def create_run(
        self,
        number: int,
        run_id: str,
        run_name: str,
        user_id: str,
        start_time: int,
        tags: dict[str, str],
    ) -> tuple[str | None, str]:
        """The run and its tags in ONE statement; the experiment's stage (None: no such
        experiment) and the run's artifact URI (nothing written unless the experiment is
        active)."""
        row = self.commits.execute(
            _PG_CREATE_RUN,
            {
                "experiment_id": number,
                "run_id": run_id,
                "name": run_name,
                "user_id": user_id,
                "start_time": start_time,
                "tag_keys": list(tags),
                "tag_values": list(tags.values()),
            },
        )
        if row is None:
            return None, ""
        return row[0], row[1] or ""

    def search_rows(self, key: tuple[Any, ...], build: Callable[[], Any]) -> list[Any] | None:
        """The rows of the search page statement ``build()`` makes for request ``key``.

        Building, cache-keying and compiling that statement costs more CPU than the database
        spends running it, and dashboards repeat the same search: the SQL text (with its bound
        values) is kept per request, and run again as is. One statement: autocommit spares the
        BEGIN and ROLLBACK round trips of a read transaction, and READ COMMITTED gives it the
        same snapshot either way. Never prepared: a generic plan cannot see the bound
        experiment, filter values and limit, and measured ~2 ms slower than the plan made for
        them (planning costs ~0.5 ms). None (remembered too) when ``build()`` has no statement
        for the request.
        """
        if key in self._search_sql:
            sql = self._search_sql[key]
        else:
            statement = build()
            sql = None
            if statement is not None:
                compiled = statement.compile(
                    dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True}
                )
                sql = (compiled.string, dict(compiled.params))
            if len(self._search_sql) >= SEARCH_SQL_CACHE_SIZE:
                self._search_sql.clear()
            self._search_sql[key] = sql
        if sql is None:
            return None
        with self.cursors.cursor() as cursor:
            return cursor.execute(sql[0], sql[1], prepare=False).fetchall()
