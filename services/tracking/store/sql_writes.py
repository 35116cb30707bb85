"""Params, metrics, tags, batches and dataset inputs: the hot write paths of the SQL store.

On PostgreSQL the usual calls (log_metric, a metrics-only or a params-only batch, log_param) are
each ONE autocommitted statement run on pg_conn's connections outside SQLAlchemy: a batch of
metric points is one ``INSERT … SELECT FROM unnest(binary arrays)``. Other calls, and SQLite, use
Core statements built once at import, one transaction per call (``executemany`` on SQLite). The
latest point of each key is upserted by the same statement or transaction with a guarded
``ON CONFLICT DO UPDATE``, so concurrent writers can never move it backwards.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import Connection

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.store.tracking_store import MetricBatch

from . import schema as t
from .pg_binary import bool_array, float8_array, int8_array
from .series import metric_series
from .sql_base import SqlStoreBase
from .sql_runs import RUN_NAME_TAG

#: (key, step, timestamp, value, is_nan) as stored.
_Point = tuple[str, int, int, float, bool]


_LATEST_ARRAYS = (
    "SELECT * FROM unnest(CAST(%(lkeys)s AS varchar[]), %(lsteps)s, %(ltimestamps)s, %(lvals)s,"
    " %(lnans)s)"
)


def _points_statement(points: str, latest: str = _LATEST_ARRAYS) -> str:
    """Metric points in ONE statement (one round trip, autocommit): check the run, append the
    points, move each key's latest point forward. The inserts only happen when the run is
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
        f" FROM ({points}) AS p(k, s, ts, v, n, h) WHERE EXISTS (SELECT 1 FROM ok)), "
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
_PG_POINTS_ONE_SHOT = _points_statement(
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
_PG_ONE_POINT = _points_statement(
    _ONE_POINT.replace("AS boolean)", "AS boolean), CAST(%(series)s AS bigint)"),
    _ONE_POINT,
)

#: Params of a params-only batch in ONE autocommitted statement: check the run, read the keys
#: already stored, insert the others, all only if the run is active and no stored value differs.
#: A plain INSERT (no ON CONFLICT): a racing writer's key, committed after this statement's
#: snapshot, fails the whole statement with a unique violation (nothing written), and the
#: caller then takes the transactional path, which sees that row and compares values.
_PG_PARAMS_ONE_SHOT = (
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
_PG_INSERT_PARAMS = sa.text(
    "INSERT INTO params (run_uuid, key, value) SELECT :run_id, u.k, u.v FROM unnest("
    "CAST(:keys AS varchar[]), CAST(:vals AS varchar[])) AS u(k, v) "
    "ON CONFLICT DO NOTHING RETURNING key"
)

_PG_UPSERT_TAGS = sa.text(
    "INSERT INTO tags (run_uuid, key, value) SELECT :run_id, u.k, u.v FROM unnest("
    "CAST(:keys AS varchar[]), CAST(:vals AS varchar[])) AS u(k, v) "
    "ON CONFLICT (run_uuid, key) DO UPDATE SET value = EXCLUDED.value"
)

_SELECT_PARAMS = sa.select(t.params.c.key, t.params.c.value).where(
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


def _stored_points(metrics: Sequence[tracking_pb2.Metric]) -> list[_Point]:
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


def _latest_per_key(points: Sequence[_Point]) -> list[_Point]:
    """Each key's greatest (step, timestamp, value) point of this batch: one upsert row per key
    (PostgreSQL refuses to update one row twice in a statement)."""
    if len({point[0] for point in points}) == 1:
        return [max(points, key=_ORDER)]  # the usual batch: one key; max() keeps the first tie
    best: dict[str, _Point] = {}
    for point in points:
        current = best.get(point[0])
        if current is None or point[1:4] > current[1:4]:
            best[point[0]] = point
    return list(best.values())


def _pg_columns(points: Sequence[_Point], prefix: str = "") -> dict[str, Any]:
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


def _pg_points_statement(
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
    return _PG_POINTS_ONE_SHOT, _pg_stored_points_params(run_id, _stored_points(metrics))


def _series_numbers(run_id: str, points: Sequence[_Point]) -> list[int]:
    """Each point's metric_series (one hash per distinct key)."""
    numbers = {key: metric_series(run_id, key) for key in {point[0] for point in points}}
    return [numbers[point[0]] for point in points]


def _pg_stored_points_params(run_id: str, points: Sequence[_Point]) -> dict[str, Any]:
    """Parameters of _PG_POINTS_ONE_SHOT for points already deduplicated (_stored_points)."""
    return {
        "run_id": run_id,
        **_pg_columns(points),
        "series": int8_array(_series_numbers(run_id, points)),
        **_pg_columns(_latest_per_key(points), "l"),
    }


def _param_conflict(run_id: str, key: str, old: str, new: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Changing param values is not allowed. Param with key={key!r} was already logged with "
        f"value={old[:100]!r} for run ID={run_id!r}. Attempted logging new value {new[:100]!r}."
    )


class WritesMixin(SqlStoreBase):
    def _latest_upsert(self) -> Any:
        lm = t.latest_metrics
        statement = self._insert(lm)
        excluded = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=["run_uuid", "key"],
            set_={
                "step": excluded.step,
                "timestamp": excluded.timestamp,
                "value": excluded.value,
                "is_nan": excluded.is_nan,
            },
            where=sa.tuple_(lm.c.step, lm.c.timestamp, lm.c.value)
            < sa.tuple_(excluded.step, excluded.timestamp, excluded.value),
        )

    def _prepare_write_statements(self) -> None:
        self._latest_statement = self._latest_upsert()
        self._metric_statement = t.metrics.insert()
        self._param_statement = self._insert(t.params).on_conflict_do_nothing()
        tag = self._insert(t.tags)
        self._tag_statement = tag.on_conflict_do_update(
            index_elements=["run_uuid", "key"], set_={"value": tag.excluded.value}
        )

    def _write_points(self, conn: Connection, run_id: str, points: Sequence[_Point]) -> None:
        if not points:
            return
        if self.dialect == "postgresql":
            # Points and latest values in the one statement, on this transaction's connection
            # (the run was checked already; the statement's own check is one more index probe).
            driver = conn.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor:
                cursor.execute(_PG_POINTS_ONE_SHOT, _pg_stored_points_params(run_id, points))
            return
        conn.execute(
            self._metric_statement,
            [
                {
                    "run_uuid": run_id,
                    "key": k,
                    "step": s,
                    "timestamp": ts,
                    "value": v,
                    "is_nan": n,
                    "series": series,
                }
                for (k, s, ts, v, n), series in zip(
                    points, _series_numbers(run_id, points), strict=True
                )
            ],
        )
        self._insert_rows(
            conn,
            self._latest_statement,
            [
                {"run_uuid": run_id, "key": k, "step": s, "timestamp": ts, "value": v, "is_nan": n}
                for k, s, ts, v, n in _latest_per_key(points)
            ],
        )

    def _write_params(
        self, conn: Connection, run_id: str, params: Sequence[tracking_pb2.Param]
    ) -> None:
        if not params:
            return
        if self.dialect == "postgresql":
            written = set(
                conn.execute(
                    _PG_INSERT_PARAMS,
                    {
                        "run_id": run_id,
                        "keys": [p.key for p in params],
                        "vals": [p.value for p in params],
                    },
                ).scalars()
            )
            params = [p for p in params if p.key not in written]
            if not params:
                return  # every value is ours: nothing to compare
        else:
            self._insert_rows(
                conn,
                self._param_statement,
                [{"run_uuid": run_id, "key": p.key, "value": p.value} for p in params],
            )
        # Whatever is stored now (ours, earlier, or a racing writer's committed value) must equal
        # what we were asked to log; otherwise the whole transaction rolls back.
        stored = dict(
            conn.execute(_SELECT_PARAMS, {"run_id": run_id, "keys": [p.key for p in params]}).all()
        )
        for p in params:
            if stored.get(p.key, p.value) != p.value:
                raise _param_conflict(run_id, p.key, stored[p.key], p.value)

    def _write_tags(self, conn: Connection, run_id: str, tags: Sequence[common_pb2.Tag]) -> None:
        if not tags:
            return
        unique = {tag.key: tag.value for tag in tags}  # last writer wins inside a batch too
        if self.dialect == "postgresql":
            conn.execute(
                _PG_UPSERT_TAGS,
                {"run_id": run_id, "keys": list(unique), "vals": list(unique.values())},
            )
        else:
            self._insert_rows(
                conn,
                self._tag_statement,
                [{"run_uuid": run_id, "key": k, "value": v} for k, v in unique.items()],
            )
        if RUN_NAME_TAG in unique:
            conn.execute(
                t.runs.update().where(t.runs.c.run_uuid == run_id).values(name=unique[RUN_NAME_TAG])
            )

    # ----------------------------------------------------------------- public

    def _pg_points_one_shot(self, run_id: str, metrics: Sequence[tracking_pb2.Metric]) -> None:
        self._pg_write_points(run_id, *_pg_points_statement(run_id, metrics))

    def _pg_write_points(self, run_id: str, statement: str, params: dict[str, Any]) -> None:
        assert self._pg is not None
        with self._pg.cursor() as cursor:
            row = cursor.execute(statement, params).fetchone()
        self._raise_unless_active(run_id, None if row is None else row[0])

    @staticmethod
    def _raise_unless_active(run_id: str, stage: str | None) -> None:
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"The run {run_id} must be in the 'active' state to be changed; its current "
                f"state is {stage!r}"
            )

    def _pg_params_one_shot(self, run_id: str, params: Sequence[tracking_pb2.Param]) -> bool:
        """Writes ``params`` in one autocommitted statement; False when a racing writer got in
        first (nothing was written: the caller retries in a transaction)."""
        assert self._pg is not None
        bound = {
            "run_id": run_id,
            "keys": [p.key for p in params],
            "vals": [p.value for p in params],
        }
        try:
            with self._pg.cursor() as cursor:
                row = cursor.execute(_PG_PARAMS_ONE_SHOT, bound).fetchone()
        except psycopg.errors.UniqueViolation:
            return False
        assert row is not None  # the outer SELECT always returns one row
        stage, stored_keys, stored_values = row
        self._raise_unless_active(run_id, stage)
        stored = dict(zip(stored_keys, stored_values, strict=True))
        for p in params:
            if stored.get(p.key, p.value) != p.value:
                raise _param_conflict(run_id, p.key, stored[p.key], p.value)
        return True

    def log_param(self, run_id: str, param: tracking_pb2.Param) -> None:
        if self._pg is not None and self._pg_params_one_shot(run_id, [param]):
            return
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_params(conn, run_id, [param])

    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> None:
        if self._pg is not None:
            value = metric.value
            is_nan = value != value  # NaN is stored as 0 with its flag, as in batches
            params = {
                "run_id": run_id,
                "key": metric.key,
                "step": metric.step,
                "timestamp": metric.timestamp,
                "value": 0.0 if is_nan else value,
                "nan": is_nan,
                "series": metric_series(run_id, metric.key),
            }
            self._pg_write_points(run_id, _PG_ONE_POINT, params)
            return
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_points(conn, run_id, _stored_points([metric]))

    def set_tag(self, run_id: str, tag: common_pb2.Tag) -> None:
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_tags(conn, run_id, [tag])

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            deleted = conn.execute(
                t.tags.delete().where(t.tags.c.run_uuid == run_id, t.tags.c.key == key)
            ).rowcount
            if not deleted:
                raise ResourceDoesNotExist(f"No tag with key {key!r} in run {run_id}")

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tracking_pb2.Metric],
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
    ) -> None:
        if self._pg is not None and not tags:
            # One atomic statement each for the two usual batches: metrics only, params only.
            if metrics and not params:
                self._pg_points_one_shot(run_id, metrics)
                return
            if params and not metrics and self._pg_params_one_shot(run_id, params):
                return
        points = _stored_points(metrics)
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            # Params first: a conflict aborts before the bulk metric insert does any work.
            self._write_params(conn, run_id, params)
            self._write_tags(conn, run_id, tags)
            self._write_points(conn, run_id, points)

    def log_inputs(self, run_id: str, inputs: Sequence[tracking_pb2.DatasetInput]) -> None:
        d = t.datasets.c
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            experiment_id = conn.execute(
                sa.select(t.runs.c.experiment_id).where(t.runs.c.run_uuid == run_id)
            ).scalar_one()
            for item in inputs:
                ds = item.dataset
                conn.execute(
                    self._insert(t.datasets)
                    .values(
                        dataset_uuid=uuid.uuid4().hex,
                        experiment_id=experiment_id,
                        name=ds.name,
                        digest=ds.digest,
                        source_type=ds.source_type,
                        source=ds.source,
                        schema=ds.schema,
                        profile=ds.profile,
                    )
                    .on_conflict_do_nothing()
                )
                dataset_uuid = conn.execute(
                    sa.select(d.dataset_uuid).where(
                        d.experiment_id == experiment_id, d.name == ds.name, d.digest == ds.digest
                    )
                ).scalar_one()
                conn.execute(
                    self._insert(t.run_inputs)
                    .values(run_uuid=run_id, dataset_uuid=dataset_uuid)
                    .on_conflict_do_nothing()
                )
                it = t.run_input_tags
                conn.execute(
                    it.delete().where(it.c.run_uuid == run_id, it.c.dataset_uuid == dataset_uuid)
                )
                unique = {tag.key: tag.value for tag in item.tags}
                if unique:
                    self._insert_rows(
                        conn,
                        it.insert(),
                        [
                            {"run_uuid": run_id, "dataset_uuid": dataset_uuid, "key": k, "value": v}
                            for k, v in unique.items()
                        ],
                    )
