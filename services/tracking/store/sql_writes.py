"""Params, metrics, tags, batches and dataset inputs: the hot write paths of the SQL store.

On PostgreSQL the usual calls (log_metric, a metrics-only or a params-only batch, log_param) are
each ONE autocommitted statement run on pg_conn's connections outside SQLAlchemy: a batch of
metric points is one ``INSERT … SELECT FROM unnest(binary arrays)``. Other calls, and SQLite, use
Core statements built once at import, one transaction per call (``executemany`` on SQLite). The
latest point of each key is upserted by the same statement or transaction with a guarded
``ON CONFLICT DO UPDATE``, so concurrent writers can never move it backwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import Connection

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from . import schema as t
from .series import metric_series
from .sql_base import SqlStoreBase
from .sql_runs import RUN_NAME_TAG
from .write_statements import (
    PG_INSERT_PARAMS,
    PG_ONE_POINT,
    PG_PARAMS_ONE_SHOT,
    PG_POINTS_ONE_SHOT,
    PG_UPSERT_TAGS,
    SELECT_PARAMS,
    Point,
    latest_per_key,
    param_conflict,
    pg_points_statement,
    pg_stored_points_params,
    series_numbers,
    stored_points,
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
        # A point already stored (a retried call) is stored once (uq_metrics_point).
        self._metric_statement = self._insert(t.metrics).on_conflict_do_nothing()
        self._param_statement = self._insert(t.params).on_conflict_do_nothing()
        tag = self._insert(t.tags)
        self._tag_statement = tag.on_conflict_do_update(
            index_elements=["run_uuid", "key"], set_={"value": tag.excluded.value}
        )

    def _write_points(self, conn: Connection, run_id: str, points: Sequence[Point]) -> None:
        if not points:
            return
        if self.dialect == "postgresql":
            # Points and latest values in the one statement, on this transaction's connection
            # (the run was checked already; the statement's own check is one more index probe).
            driver = conn.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor:
                cursor.execute(PG_POINTS_ONE_SHOT, pg_stored_points_params(run_id, points))
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
        self._insert_rows(
            conn,
            self._latest_statement,
            [
                {"run_uuid": run_id, "key": k, "step": s, "timestamp": ts, "value": v, "is_nan": n}
                for k, s, ts, v, n in latest_per_key(points)
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
                    PG_INSERT_PARAMS,
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
            conn.execute(SELECT_PARAMS, {"run_id": run_id, "keys": [p.key for p in params]}).all()
        )
        for p in params:
            if stored.get(p.key, p.value) != p.value:
                raise param_conflict(run_id, p.key, stored[p.key], p.value)

    def _write_tags(self, conn: Connection, run_id: str, tags: Sequence[common_pb2.Tag]) -> None:
        if not tags:
            return
        unique = {tag.key: tag.value for tag in tags}  # last writer wins inside a batch too
        if self.dialect == "postgresql":
            conn.execute(
                PG_UPSERT_TAGS,
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
        self._pg_write_points(run_id, *pg_points_statement(run_id, metrics))

    def _pg_write_points(self, run_id: str, statement: str, params: dict[str, Any]) -> None:
        assert self._commits is not None
        row = self._commits.execute(statement, params)
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
        assert self._commits is not None
        bound = {
            "run_id": run_id,
            "keys": [p.key for p in params],
            "vals": [p.value for p in params],
        }
        try:
            row = self._commits.execute(PG_PARAMS_ONE_SHOT, bound)
        except psycopg.errors.UniqueViolation:
            return False
        assert row is not None  # the outer SELECT always returns one row
        stage, stored_keys, stored_values = row
        self._raise_unless_active(run_id, stage)
        stored = dict(zip(stored_keys, stored_values, strict=True))
        for p in params:
            if stored.get(p.key, p.value) != p.value:
                raise param_conflict(run_id, p.key, stored[p.key], p.value)
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
            self._pg_write_points(run_id, PG_ONE_POINT, params)
            return
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._write_points(conn, run_id, stored_points([metric]))

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
        points = stored_points(metrics)
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
