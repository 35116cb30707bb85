"""Metric history reads: paged, streamed (server-side cursor), and sampled across runs."""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.store.paging import decode_page_token, encode_page_token
from mlgrid.store.tracking_store import HistoryColumns, HistoryPoint

from . import schema as t
from .series import metric_series
from .sql_base import SqlStoreBase

_M = t.metrics.c

#: PostgreSQL: the next chunk of one history as three big-endian byte strings, one per column
#: (int8send/float8send concatenated by string_agg), so no row and no Python object per point
#: reaches the service. Keyset-paged on the stored point, the uq_metrics_point order below
#: ``series``, so each chunk is one short index range scan however far into the history it is.
#: The aggregates take no ORDER BY of their own (that doubles the cost): a plain aggregate over
#: an ordered LIMIT subquery, with no join, consumes the rows in the subquery's order.
_PG_HISTORY_CHUNK = (
    "SELECT count(*), string_agg(int8send(step), ''::bytea),"
    " string_agg(int8send(\"timestamp\"), ''::bytea),"
    " string_agg(float8send(CASE WHEN is_nan THEN 'NaN'::float8 ELSE value END), ''::bytea)"
    ' FROM (SELECT step, "timestamp", value, is_nan FROM metrics'
    " WHERE series = %(series)s AND run_uuid = %(run_id)s AND key = %(key)s"
    ' AND (step, "timestamp", value, is_nan) > (%(step)s, %(timestamp)s, %(value)s, %(is_nan)s)'
    ' ORDER BY step, "timestamp", value, is_nan LIMIT %(limit)s) AS chunk'
)
#: Below every stored point: the keyset's start.
_BEFORE_ALL = {"step": -(2**63), "timestamp": -(2**63), "value": -math.inf, "is_nan": False}


def _native(big_endian: bytes | None, typecode: str) -> array:
    """A column of big-endian 8-byte values (PostgreSQL's send format) as a native array."""
    column = array(typecode, big_endian or b"")
    if sys.byteorder == "little":
        column.byteswap()
    return column


def sample_indices(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over range(count), always the first and the last."""
    if count <= wanted:
        return list(range(count))
    if wanted <= 1:
        return [count - 1]
    step = (count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


class HistoryMixin(SqlStoreBase):
    def _history_columns(self) -> tuple[sa.ColumnElement, ...]:
        if self.dialect == "postgresql":
            # Rebuild NaN in SQL so rows need no per-point fix-up in Python.
            value = sa.case(
                (_M.is_nan.is_(True), sa.cast(sa.literal("NaN"), sa.Float(53))), else_=_M.value
            )
            return (_M.step, _M.timestamp, value)
        return (_M.step, _M.timestamp, _M.value, _M.is_nan)

    def _history_query(self, run_id: str, key: str) -> sa.Select:
        return (
            sa.select(*self._history_columns())
            .where(_M.series == metric_series(run_id, key), _M.run_uuid == run_id, _M.key == key)
            .order_by(_M.step, _M.timestamp, _M.value)
        )

    def get_metric_history(
        self, run_id: str, key: str, max_results: int, page_token: str
    ) -> tuple[list[tracking_pb2.Metric], str]:
        offset = decode_page_token(page_token, "metric-history")
        query = self._history_query(run_id, key).offset(offset)
        if max_results:
            query = query.limit(max_results + 1)
        with self._read() as conn:
            self._check_run_exists(conn, run_id)
            rows = conn.execute(query).all()
        more = bool(max_results) and len(rows) > max_results
        if more:
            rows = rows[:max_results]
        out = []
        for row in rows:
            value = math.nan if len(row) > 3 and row[3] else row[2]
            out.append(tracking_pb2.Metric(key=key, value=value, timestamp=row[1], step=row[0]))
        token = encode_page_token(offset + max_results, "metric-history") if more else ""
        return out, token

    def iter_metric_history(
        self, run_id: str, key: str, chunk_size: int
    ) -> Iterator[Sequence[HistoryPoint]]:
        with self._read() as conn:
            self._check_run_exists(conn, run_id)
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(
                self._history_query(run_id, key)
            )
            sqlite = self.dialect != "postgresql"
            for partition in result.partitions(chunk_size):
                if sqlite:
                    yield [(r[0], r[1], math.nan if r[3] else r[2]) for r in partition]
                else:
                    yield partition  # type: ignore[misc]  # Rows are (step, timestamp, value)

    def iter_metric_history_columns(
        self, run_id: str, key: str, chunk_size: int
    ) -> Iterator[HistoryColumns]:
        if self.dialect != "postgresql":
            for points in self.iter_metric_history(run_id, key, chunk_size):
                yield HistoryColumns.of_points(points)
            return
        with self._read() as conn:
            # One snapshot for every chunk, as the single cursor of iter_metric_history has.
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            self._check_run_exists(conn, run_id)
            driver = conn.connection.driver_connection
            params = {
                "series": metric_series(run_id, key),
                "run_id": run_id,
                "key": key,
                "limit": chunk_size,
                **_BEFORE_ALL,
            }
            with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
                while True:
                    cursor.execute(_PG_HISTORY_CHUNK, params, prepare=True)
                    count, steps, timestamps, values = cursor.fetchone()
                    if not count:
                        return
                    chunk = HistoryColumns(
                        _native(steps, "q"), _native(timestamps, "q"), _native(values, "d")
                    )
                    yield chunk
                    if count < chunk_size:
                        return
                    # The next chunk starts after this one's last stored point. Every write
                    # path stores NaN as (0.0, is_nan) (write_statements.stored_points), so a
                    # NaN read back is that stored key.
                    last = chunk.values[-1]
                    params["step"], params["timestamp"] = chunk.steps[-1], chunk.timestamps[-1]
                    params["value"], params["is_nan"] = (
                        (0.0, True) if last != last else (last, False)
                    )

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        key: str,
        start_step: int | None,
        end_step: int | None,
        max_results: int,
    ) -> list[tracking_pb2.MetricWithRunId]:
        query = sa.select(_M.run_uuid, _M.step, _M.timestamp, _M.value, _M.is_nan).where(
            _M.series.in_([metric_series(run_id, key) for run_id in dict.fromkeys(run_ids)]),
            _M.run_uuid.in_(list(run_ids)),
            _M.key == key,
        )
        if start_step is not None:
            query = query.where(_M.step >= start_step)
        if end_step is not None:
            query = query.where(_M.step <= end_step)
        query = query.order_by(_M.run_uuid, _M.step, _M.timestamp, _M.value)
        per_run: dict[str, dict[int, tuple[int, float, bool]]] = {}
        with self._read() as conn:
            for run_uuid, step, timestamp, value, is_nan in conn.execute(query):
                # Later rows of a step are later in time: the last one stays.
                per_run.setdefault(run_uuid, {})[step] = (timestamp, value, is_nan)
        out: list[tracking_pb2.MetricWithRunId] = []
        for run_id in dict.fromkeys(run_ids):
            steps = per_run.get(run_id)
            if not steps:
                continue
            ordered = sorted(steps.items())
            for index in sample_indices(len(ordered), max_results):
                step, (timestamp, value, is_nan) = ordered[index]
                out.append(
                    tracking_pb2.MetricWithRunId(
                        run_id=run_id,
                        metric=tracking_pb2.Metric(
                            key=key,
                            value=math.nan if is_nan else value,
                            timestamp=timestamp,
                            step=step,
                        ),
                    )
                )
        return out
