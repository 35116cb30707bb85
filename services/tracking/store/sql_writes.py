"""Params, metrics, tags, batches and dataset inputs: the hot write paths of the SQL store.

Hot paths use Core statements built once at import (SQLAlchemy caches their compiled form), one
transaction per call, and bulk statements: on PostgreSQL a batch of metric points is ONE
``INSERT … SELECT FROM unnest(arrays)``; on SQLite one ``executemany``. The latest point of each
key is upserted in the same transaction with a guarded ``ON CONFLICT DO UPDATE``, so concurrent
writers can never move it backwards.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from . import schema as t
from .sql_base import SqlStoreBase
from .sql_runs import RUN_NAME_TAG

#: (key, step, timestamp, value, is_nan) as stored.
_Point = tuple[str, int, int, float, bool]

_PG_LATEST_COLUMNS = (
    "CAST(:lkeys AS varchar[]), CAST(:lsteps AS bigint[]), CAST(:ltimestamps AS bigint[]), "
    "CAST(:lvals AS float8[]), CAST(:lnans AS boolean[])"
)

#: Metric points in ONE statement (one round trip, autocommit): check the run, append the
#: points, move each key's latest point forward. The inserts only happen when the run is
#: active; the answer (the run's stage, or no row) tells the caller what to report.
_PG_POINTS_ONE_SHOT = sa.text(
    "WITH run AS (SELECT lifecycle_stage FROM runs WHERE run_uuid = :run_id), "
    "ok AS (SELECT 1 FROM run WHERE lifecycle_stage = 'active'), "
    "ins AS ("
    ' INSERT INTO metrics (run_uuid, key, step, "timestamp", value, is_nan)'
    " SELECT :run_id, u.k, u.s, u.ts, u.v, u.n FROM unnest("
    " CAST(:keys AS varchar[]), CAST(:steps AS bigint[]), CAST(:timestamps AS bigint[]),"
    " CAST(:vals AS float8[]), CAST(:nans AS boolean[])) AS u(k, s, ts, v, n)"
    " WHERE EXISTS (SELECT 1 FROM ok)), "
    "up AS ("
    ' INSERT INTO latest_metrics (run_uuid, key, step, "timestamp", value, is_nan)'
    f" SELECT :run_id, u.k, u.s, u.ts, u.v, u.n FROM unnest({_PG_LATEST_COLUMNS})"
    " AS u(k, s, ts, v, n) WHERE EXISTS (SELECT 1 FROM ok)"
    " ON CONFLICT (run_uuid, key) DO UPDATE SET step = EXCLUDED.step,"
    ' "timestamp" = EXCLUDED."timestamp", value = EXCLUDED.value, is_nan = EXCLUDED.is_nan'
    ' WHERE (latest_metrics.step, latest_metrics."timestamp", latest_metrics.value)'
    ' < (EXCLUDED.step, EXCLUDED."timestamp", EXCLUDED.value)) '
    "SELECT lifecycle_stage FROM run"
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


def _stored_points(metrics: Iterable[tracking_pb2.Metric]) -> list[_Point]:
    """Rows to insert; exact duplicates within the call are dropped (as MLflow does)."""
    # One comprehension (C-level loop); NaN (v != v) cannot be stored by SQLite: keep the flag
    # and a 0.
    points = [
        (m.key, m.step, m.timestamp, v, False)
        if (v := m.value) == v
        else (m.key, m.step, m.timestamp, 0.0, True)
        for m in metrics
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


def _pg_arrays(run_id: str, points: Sequence[_Point]) -> dict[str, str]:
    """The columns of ``points`` as PostgreSQL array literals.

    Built with str.join (C speed) instead of letting the driver adapt Python lists, which costs
    several microseconds per element. Safe: keys are validated to [A-Za-z0-9_ ./:-] (no quotes
    or backslashes), repr() of a float round-trips exactly, and PostgreSQL reads 'nan'/'inf'.
    """
    keys, steps, timestamps, values, nans = zip(*points, strict=True)
    # str() of a list of ints/floats renders every element with repr() in one C loop;
    # PostgreSQL ignores the blanks after the commas.
    return {
        "run_id": run_id,
        "keys": '{"' + '","'.join(keys) + '"}',
        "steps": "{" + str(list(steps))[1:-1] + "}",
        "timestamps": "{" + str(list(timestamps))[1:-1] + "}",
        "vals": "{" + str(list(values))[1:-1] + "}",
        "nans": "{" + ",".join(["t" if n else "f" for n in nans]) + "}",
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
            # Points and latest values in the one cached statement (the run was checked already
            # in this transaction; the statement's own check is one more index probe).
            conn.execute(_PG_POINTS_ONE_SHOT, self._pg_points_bound(run_id, points))
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
                }
                for k, s, ts, v, n in points
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

    def log_param(self, run_id: str, param: tracking_pb2.Param) -> None:
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_params(conn, run_id, [param])

    @staticmethod
    def _pg_points_bound(run_id: str, points: Sequence[_Point]) -> dict[str, str]:
        bound = _pg_arrays(run_id, points)
        latest = _pg_arrays(run_id, _latest_per_key(points))
        bound.update({f"l{name}": value for name, value in latest.items() if name != "run_id"})
        return bound

    def _pg_points_one_shot(self, run_id: str, points: Sequence[_Point]) -> None:
        bound = self._pg_points_bound(run_id, points)
        with self._autocommit() as conn:
            stage = conn.execute(_PG_POINTS_ONE_SHOT, bound).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"The run {run_id} must be in the 'active' state to be changed; its current "
                f"state is {stage!r}"
            )

    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> None:
        points = _stored_points([metric])
        if self.dialect == "postgresql":
            self._pg_points_one_shot(run_id, points)
            return
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_points(conn, run_id, points)

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
        points = _stored_points(metrics)
        if self.dialect == "postgresql" and points and not params and not tags:
            self._pg_points_one_shot(run_id, points)  # metrics only: one atomic statement
            return
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
