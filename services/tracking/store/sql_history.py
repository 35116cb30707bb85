"""Metric history reads: paged, streamed (server-side cursor), and sampled across runs."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.store.paging import decode_page_token, encode_page_token
from mlgrid.store.tracking_store import HistoryColumns, HistoryPoint

from . import pg_history
from . import schema as t
from .series import metric_series
from .sql_base import SqlStoreBase

_M = t.metrics.c

#: Connections a long PostgreSQL history read spreads over after its first chunk
#: (pg_history.py): the database's CPU per point is most of such a read's cost. Three: the two
#: cores of the smallest deployment, and one more so a core is not idle while a connection
#: waits for the sender (10M points, load 8: 7.1-7.7 s in one connection, 4.0-5.7 s with two,
#: 3.3 s with four).
PG_HISTORY_READERS = 3


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
        yield from pg_history.read_history(
            self._read, self._check_run_exists, run_id, key, chunk_size, PG_HISTORY_READERS
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
