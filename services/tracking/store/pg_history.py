"""PostgreSQL: one metric history read as packed column chunks, over several connections.

Each point is one row, so a long history costs the database CPU per point (~0.3 us to walk
the index and ~0.2 us to pack it: ~3 s for 10M points), and in one connection that is one
core's work. The history is cut into stripes of consecutive steps, read by ``workers``
connections at once and handed on in order, so that work spreads over the machine's cores.

- Every connection sees the same snapshot (pg_export_snapshot / SET TRANSACTION SNAPSHOT),
  so the stripes together are exactly the history of one moment, as one cursor would give.
- A stripe is one step range: its points are contiguous in the (step, timestamp, value,
  is_nan) order, and it is read with keyset-paged chunks like the single-connection path, so a
  stripe holding more points than expected just yields more chunks.
- Stripe widths follow the density of steps seen so far (points per step), aiming at one chunk
  a stripe; a history whose points share one step (step 0 of every point, MLflow's default)
  is one stripe, read by the first connection alone, as before.
- Memory stays bounded: stripes are started at most ``workers + 1`` ahead of the one being
  sent, and each holds at most two chunks.
- A process uses at most MAX_STRIPE_CONNECTIONS stripe connections at once over all its reads;
  a read that finds none free goes on in its first connection alone instead of waiting for the
  pool, which the service's other calls share.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
from array import array
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection

from mlgrid.store.tracking_store import HistoryColumns

from .series import metric_series

#: The next chunk of one history's step range as three big-endian byte strings, one per column
#: (int8send/float8send concatenated by string_agg), so no row and no Python object per point
#: reaches the service. Keyset-paged on the stored point, the uq_metrics_point order below
#: ``series``, and bounded by the stripe's last step, so each chunk is one short index range
#: scan however far into the history it is. The aggregates take no ORDER BY of their own (that
#: doubles the cost): a plain aggregate over an ordered LIMIT subquery, with no join, consumes
#: the rows in the subquery's order.
CHUNK = (
    "SELECT count(*), string_agg(int8send(step), ''::bytea),"
    " string_agg(int8send(\"timestamp\"), ''::bytea),"
    " string_agg(float8send(CASE WHEN is_nan THEN 'NaN'::float8 ELSE value END), ''::bytea)"
    ' FROM (SELECT step, "timestamp", value, is_nan FROM metrics'
    " WHERE series = %(series)s AND run_uuid = %(run_id)s AND key = %(key)s"
    ' AND (step, "timestamp", value, is_nan) > (%(step)s, %(timestamp)s, %(value)s, %(is_nan)s)'
    " AND step <= %(last_step)s"
    ' ORDER BY step, "timestamp", value, is_nan LIMIT %(limit)s) AS chunk'
)
_LAST_STEP = (
    "SELECT max(step) FROM metrics"
    " WHERE series = %(series)s AND run_uuid = %(run_id)s AND key = %(key)s"
)
_INT8_MIN, _INT8_MAX = -(2**63), 2**63 - 1
#: Below every stored point: the keyset's start.
BEFORE_ALL = {"step": _INT8_MIN, "timestamp": _INT8_MIN, "value": -math.inf, "is_nan": False}
#: Chunks a stripe may hold before its reader waits for the sender.
_STRIPE_DEPTH = 2
_POLL_SECONDS = 0.5
#: Stripe connections in use at once in this process, over every read: two long reads at full
#: width, well inside the pool (10 + 22 connections, services/common/sql.py).
MAX_STRIPE_CONNECTIONS = 6
_stripe_connections = threading.BoundedSemaphore(MAX_STRIPE_CONNECTIONS)


def _after_step(step: int) -> dict[str, Any]:
    """A keyset position after every stored point of ``step`` and before any of ``step + 1``:
    no stored key reaches (step, max, +inf, is_nan) (NaN is stored as 0.0 with is_nan)."""
    return {"step": step, "timestamp": _INT8_MAX, "value": math.inf, "is_nan": True}


def _native(big_endian: bytes | None, typecode: str) -> array:
    """A column of big-endian 8-byte values (PostgreSQL's send format) as a native array."""
    column = array(typecode, big_endian or b"")
    if sys.byteorder == "little":
        column.byteswap()
    return column


def _after(chunk: HistoryColumns) -> dict[str, Any]:
    """The keyset position after the chunk's last stored point. Every write path stores NaN
    as (0.0, is_nan) (write_statements.stored_points), so a NaN read back is that key."""
    last = chunk.values[-1]
    value, is_nan = (0.0, True) if last != last else (last, False)
    return {"step": chunk.steps[-1], "timestamp": chunk.timestamps[-1], "value": value,
            "is_nan": is_nan}  # fmt: skip


def read_chunks(
    cursor: Any, base: dict[str, Any], start: dict[str, Any], last_step: int
) -> Iterator[HistoryColumns]:
    """The chunks of the points after ``start`` up to ``last_step``, in order."""
    params = {**base, **start, "last_step": last_step}
    while True:
        cursor.execute(CHUNK, params, prepare=True)
        count, steps, timestamps, values = cursor.fetchone()
        if not count:
            return
        chunk = HistoryColumns(_native(steps, "q"), _native(timestamps, "q"), _native(values, "d"))
        yield chunk
        if count < base["limit"]:
            return
        params.update(_after(chunk))


_END = object()


class _Stripe:
    """Steps ``first``..``last`` (inclusive) of the history, and the chunks read of them."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.chunks: queue.Queue[object] = queue.Queue(maxsize=_STRIPE_DEPTH)


class _Stripes:
    """Hands out stripes in step order to the reading threads, and in the same order to the
    sender, never more than ``window`` ahead of the sender."""

    def __init__(self, first: int, last: int, width: int, target: int, window: int) -> None:
        self.next_first, self.last = first, last
        self.width, self.target, self.window = width, target, window
        self.started: list[_Stripe] = []
        self.sent = 0
        self.stopped = False
        self.failure: BaseException | None = None
        self.lock = threading.Condition()

    def take(self) -> _Stripe | None:
        """The next stripe to read; None when there is none left or the stream stopped."""
        with self.lock:
            while not self.stopped and len(self.started) - self.sent >= self.window:
                self.lock.wait(_POLL_SECONDS)
            if self.stopped or self.next_first > self.last:
                return None
            stripe = _Stripe(self.next_first, min(self.last, self.next_first + self.width - 1))
            self.next_first = stripe.last + 1
            self.started.append(stripe)
            self.lock.notify_all()
            return stripe

    def learn(self, steps: int, points: int) -> None:
        """A stripe of ``steps`` steps held ``points``: size the next ones to hold a chunk."""
        with self.lock:
            self.width = max(1, round(steps * self.target / points)) if points else self.width * 2

    def next_to_send(self) -> _Stripe | None:
        with self.lock:
            while not self.stopped and self.sent >= len(self.started):
                if self.next_first > self.last:
                    return None
                self.lock.wait(_POLL_SECONDS)
            self.raise_failure()
            return None if self.stopped else self.started[self.sent]

    def sent_one(self) -> None:
        with self.lock:
            self.sent += 1
            self.lock.notify_all()

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.failure = self.failure or error
            self.stop()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.lock.notify_all()


def read_history(
    connect: Callable[[], AbstractContextManager[Connection]],
    check_run: Callable[[Connection, str], object],
    run_id: str,
    key: str,
    chunk_size: int,
    workers: int,
) -> Iterator[HistoryColumns]:
    """Every point of ``key`` in ``run_id`` as column chunks of at most ``chunk_size`` points,
    ordered by (step, timestamp, value), read over up to ``workers`` connections."""
    base = {"series": metric_series(run_id, key), "run_id": run_id, "key": key,
            "limit": chunk_size}  # fmt: skip
    with connect() as conn:
        # One snapshot for every chunk (and exported to the other connections below).
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        check_run(conn, run_id)
        driver = conn.connection.driver_connection
        with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            first_chunk = next(read_chunks(cursor, base, BEFORE_ALL, _INT8_MAX), None)
            if first_chunk is None:
                return
            yield first_chunk
            if len(first_chunk.steps) < chunk_size:
                return
            # The rest of the first chunk's last step, on this connection (all of the history
            # when every point has the same step).
            edge = first_chunk.steps[-1]
            yield from read_chunks(cursor, base, _after(first_chunk), edge)
            cursor.execute(_LAST_STEP, base)
            (last_step,) = cursor.fetchone()
            if last_step is None or last_step <= edge:
                return
            taken = 0
            while taken < workers and _stripe_connections.acquire(blocking=False):
                taken += 1
            try:
                if not taken:  # every stripe connection is busy: the rest here, in order
                    yield from read_chunks(cursor, base, _after_step(edge), _INT8_MAX)
                    return
                cursor.execute("SELECT pg_export_snapshot()")
                (snapshot,) = cursor.fetchone()
                span = edge - first_chunk.steps[0] + 1
                stripes = _Stripes(edge + 1, last_step, span, chunk_size, window=taken + 1)
                yield from _read_in_parallel(connect, base, snapshot, stripes, taken)
            finally:
                for _ in range(taken):
                    _stripe_connections.release()


def _read_in_parallel(
    connect: Callable[[], AbstractContextManager[Connection]],
    base: dict[str, Any],
    snapshot: str,
    stripes: _Stripes,
    workers: int,
) -> Iterator[HistoryColumns]:
    def put(stripe: _Stripe, item: object) -> bool:
        while not stripes.stopped:
            try:
                stripe.chunks.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    from psycopg import sql  # here: a SQLite store never loads psycopg

    def read() -> None:
        try:
            with connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                driver = conn.connection.driver_connection
                with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
                    # The first statement of this connection's transaction: the same snapshot.
                    cursor.execute(
                        sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot))
                    )
                    while (stripe := stripes.take()) is not None:
                        points = 0
                        start = _after_step(stripe.first - 1)
                        for chunk in read_chunks(cursor, base, start, stripe.last):
                            points += len(chunk.steps)
                            if not put(stripe, chunk):
                                return
                        stripes.learn(stripe.last - stripe.first + 1, points)
                        if not put(stripe, _END):
                            return
        except BaseException as error:  # raised to the sender
            stripes.fail(error)

    threads = [
        threading.Thread(target=read, name=f"history-stripes-{n}", daemon=True)
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        while (stripe := stripes.next_to_send()) is not None:
            while True:
                try:
                    item = stripe.chunks.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    stripes.raise_failure()  # a reader failed: this stripe may never end
                    continue
                if item is _END:
                    break
                yield item  # type: ignore[misc]  # every other item is a chunk
            stripes.sent_one()
        stripes.raise_failure()
    finally:
        stripes.stop()
        for thread in threads:
            thread.join()
