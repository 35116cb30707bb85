"""Params, metrics, tags, batches and dataset inputs: the write paths of the SQL store.

One plain path on every database: Core statements built once per store (services/common/
sql_dialect.py spells insert-ignore and upsert per database), one transaction per call. On
PostgreSQL the usual calls (log_metric, a metrics-only or a params-only batch, log_param) take
the fast paths of pg_fast.PgFastPaths instead, where bench/ shows they pay. The latest point of
each key is moved forward only to a greater (step, timestamp, value), so concurrent writers can
never move it backwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import Connection

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from . import schema as t
from .sql_base import SqlStoreBase, _database_errors
from .sql_runs import RUN_NAME_TAG
from .sqlite_points import SqlitePoints
from .write_statements import (
    SELECT_PARAMS,
    Point,
    latest_per_key,
    param_conflict,
    series_numbers,
    stored_points,
)


class WritesMixin(SqlStoreBase):
    def _prepare_write_statements(self) -> None:
        lm = t.latest_metrics
        self._metric_statement = self._insert_ignore(t.metrics)
        self._param_statement = self._insert_ignore(t.params)
        self._tag_statement = self._upsert(t.tags, ("run_uuid", "key"), ("value",))
        # Each key's latest point: its stored row locked, created if missing, then moved forward
        # only to a greater (step, timestamp, value). Plain statements rather than one guarded
        # upsert, so every database runs the same ones. Locking first keeps concurrent writers of
        # a key in line (on MySQL two writers that both found the row through INSERT IGNORE would
        # hold shared locks and deadlock on the update), so the latest point never moves back.
        self._latest_lock = (
            sa.select(lm.c.key)
            .where(
                lm.c.run_uuid == sa.bindparam("run_id"),
                lm.c.key.in_(sa.bindparam("keys", expanding=True)),
            )
            .order_by(lm.c.key)
            .with_for_update()
        )
        self._latest_insert = self._insert_ignore(lm)
        self._latest_forward = (
            lm.update()
            .where(
                lm.c.run_uuid == sa.bindparam("b_run_uuid"),
                lm.c.key == sa.bindparam("b_key"),
                sa.tuple_(lm.c.step, lm.c.timestamp, lm.c.value)
                < sa.tuple_(
                    sa.bindparam("b_step"), sa.bindparam("b_timestamp"), sa.bindparam("b_value")
                ),
            )
            .values(
                step=sa.bindparam("b_step"),
                timestamp=sa.bindparam("b_timestamp"),
                value=sa.bindparam("b_value"),
                is_nan=sa.bindparam("b_is_nan"),
            )
        )
        if self.dialect == "sqlite" and self.fast_paths:
            # The same statements run without SQLAlchemy's per-statement work (sqlite_points.py).
            self._sqlite_points = SqlitePoints(
                self.engine,
                self._run_state,
                self._metric_statement,
                self._latest_insert,
                self._latest_forward,
            )

    def _write_points(self, conn: Connection, run_id: str, points: Sequence[Point]) -> None:
        if self._sqlite_points is not None:
            self._sqlite_points.write(conn, run_id, points)
            return
        if not points:
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
                    points, series_numbers(run_id, points), strict=True
                )
            ],
        )
        latest = sorted(latest_per_key(points))  # one lock order for every writer
        conn.execute(self._latest_lock, {"run_id": run_id, "keys": [p[0] for p in latest]})
        rows = [
            {"run_uuid": run_id, "key": k, "step": s, "timestamp": ts, "value": v, "is_nan": n}
            for k, s, ts, v, n in latest
        ]
        conn.execute(self._latest_insert, rows)
        conn.execute(self._latest_forward, [{f"b_{k}": v for k, v in row.items()} for row in rows])

    def _write_params(
        self, conn: Connection, run_id: str, params: Sequence[tracking_pb2.Param]
    ) -> None:
        if not params:
            return
        self._insert_rows(
            conn,
            self._param_statement,
            [{"run_uuid": run_id, "key": p.key, "value": p.value} for p in params],
        )
        # Whatever is stored now (ours, earlier, or a racing writer's committed value) must equal
        # what we were asked to log; otherwise the whole transaction rolls back.
        stored = dict(
            conn.execute(SELECT_PARAMS, {"run_id": run_id, "keys": [p.key for p in params]}).all()
        )
        self._check_params(run_id, params, stored)

    @staticmethod
    def _check_params(
        run_id: str, params: Sequence[tracking_pb2.Param], stored: dict[str, str]
    ) -> None:
        for p in params:
            if stored.get(p.key, p.value) != p.value:
                raise param_conflict(run_id, p.key, stored[p.key], p.value)

    def _write_tags(self, conn: Connection, run_id: str, tags: Sequence[common_pb2.Tag]) -> None:
        if not tags:
            return
        unique = {tag.key: tag.value for tag in tags}  # last writer wins inside a batch too
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

    @staticmethod
    def _raise_unless_active(run_id: str, stage: str | None) -> None:
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"The run {run_id} must be in the 'active' state to be changed; its current "
                f"state is {stage!r}"
            )

    def _fast_params(self, run_id: str, params: Sequence[tracking_pb2.Param]) -> bool:
        """Params through the fast path; False when it could not take them (the caller then
        takes the plain path)."""
        assert self._fast is not None
        outcome = self._fast.log_params(run_id, params)
        if outcome is None:
            return False
        stage, stored = outcome
        self._raise_unless_active(run_id, stage)
        self._check_params(run_id, params, stored)
        return True

    def log_param(self, run_id: str, param: tracking_pb2.Param) -> None:
        if self._fast is not None and self._fast_params(run_id, [param]):
            return
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_params(conn, run_id, [param])

    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> None:
        if self._fast is not None:
            self._raise_unless_active(run_id, self._fast.log_metric(run_id, metric))
            return
        points = stored_points([metric])
        if self._sqlite_points is not None:
            # Embedded mode's hot call: its transaction on the driver (sqlite_points.py).
            with _database_errors(), self._sqlite_points.transaction() as driver:
                self._raise_unless_active(run_id, self._sqlite_points.run_stage(driver, run_id))
                self._sqlite_points.write(driver, run_id, points)
            return
        for attempt in self._deadlock_retries():
            with attempt, self._write() as conn:
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
        if self._fast is not None and not tags:
            # One atomic statement each for the two usual batches: metrics only, params only.
            if metrics and not params:
                self._raise_unless_active(run_id, self._fast.log_metrics(run_id, metrics))
                return
            if params and not metrics and self._fast_params(run_id, params):
                return
        points = stored_points(metrics)
        for attempt in self._deadlock_retries():
            with attempt, self._write() as conn:
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
                    self._insert_ignore(t.datasets).values(
                        dataset_uuid=uuid.uuid4().hex,
                        experiment_id=experiment_id,
                        name=ds.name,
                        digest=ds.digest,
                        source_type=ds.source_type,
                        source=ds.source,
                        schema=ds.schema,
                        profile=ds.profile,
                    )
                )
                dataset_uuid = conn.execute(
                    sa.select(d.dataset_uuid).where(
                        d.experiment_id == experiment_id, d.name == ds.name, d.digest == ds.digest
                    )
                ).scalar_one()
                conn.execute(
                    self._insert_ignore(t.run_inputs).values(
                        run_uuid=run_id, dataset_uuid=dataset_uuid
                    )
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
