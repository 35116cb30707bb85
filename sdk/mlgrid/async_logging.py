"""Non-blocking logging: a background queue that batches metrics, params and tags per run.

``log_metric(..., synchronous=False)`` (or ``MLGRID_ASYNC_LOGGING=true``) puts the data on a
queue and returns a :class:`RunOperations` at once. One worker thread gathers what is queued
(for up to ``MLGRID_ASYNC_LOGGING_BATCH_INTERVAL`` seconds), groups it by run and sends each
run's share as log_batch calls. Failures are kept until someone looks: ``RunOperations.wait()``
raises the failure of that operation, and :meth:`AsyncLogger.flush` (called by ``end_run``,
``mlgrid.flush_async_logging()`` and at interpreter exit) raises every failure not yet seen.
Nothing fails silently.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from mlgrid import environment as env
from mlgrid.entities import Metric, Param, RunTag
from mlgrid.exceptions import MlgridException

log = logging.getLogger(__name__)

#: Sends one run's batch synchronously (the client's log_batch, which splits big batches).
BatchSender = Callable[[str, Sequence[Metric], Sequence[Param], Sequence[RunTag]], None]

#: At most this many queued operations go into one gathering round.
MAX_ITEMS_PER_ROUND = 10_000


class RunOperations:
    """A handle on queued logging operations, like a future: ``wait()`` blocks until they are
    written and raises if writing failed."""

    def __init__(self, operations: Iterable[RunOperations] = ()) -> None:
        self._children = list(operations)
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._observed = False
        if self._children:
            self._done.set()

    def _finish(self, error: BaseException | None) -> None:
        self._error = error
        self._done.set()

    def done(self) -> bool:
        return all(child.done() for child in self._children) and self._done.is_set()

    def wait(self, timeout: float | None = None) -> None:
        """Blocks until written; raises the failure (which then counts as reported)."""
        for child in self._children:
            child.wait(timeout)
        if not self._done.wait(timeout):
            raise TimeoutError(f"queued logging did not finish within {timeout} s")
        if self._error is not None:
            self._observed = True
            raise self._error

    def result(self, timeout: float | None = None) -> None:
        self.wait(timeout)


@dataclass
class _Item:
    run_id: str
    metrics: list[Metric]
    params: list[Param]
    tags: list[RunTag]
    operation: RunOperations


@dataclass
class _Flush:
    """Queued by flush(): makes the worker send what it holds without waiting further."""

    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Batch:
    metrics: list[Metric] = field(default_factory=list)
    params: dict[str, Param] = field(default_factory=dict)
    tags: dict[str, RunTag] = field(default_factory=dict)
    operations: list[RunOperations] = field(default_factory=list)


def _group(items: list[_Item]) -> list[tuple[str, _Batch]]:
    """Per run, in queue order, merged into as few batches as keep every call valid: a param
    key logged again with another value starts a new batch, so the server reports the conflict
    for that operation rather than rejecting the whole batch as a duplicate."""
    batches: list[tuple[str, _Batch]] = []
    open_batch: dict[str, _Batch] = {}
    for item in items:
        batch = open_batch.get(item.run_id)
        conflict = batch is not None and any(
            p.key in batch.params and batch.params[p.key].value != p.value for p in item.params
        )
        if batch is None or conflict:
            batch = _Batch()
            open_batch[item.run_id] = batch
            batches.append((item.run_id, batch))
        batch.metrics.extend(item.metrics)
        batch.params.update({p.key: p for p in item.params})
        # Tags are last-writer-wins: the latest value of a key in the batch is the one sent.
        batch.tags.update({t.key: t for t in item.tags})
        batch.operations.append(item.operation)
    return batches


class AsyncLogger:
    """The queue and worker thread for one client."""

    def __init__(
        self,
        send: BatchSender,
        *,
        batch_interval: float | None = None,
        queue_size: int | None = None,
    ) -> None:
        self._send = send
        self._interval = (
            batch_interval
            if batch_interval is not None
            else env.MLGRID_ASYNC_LOGGING_BATCH_INTERVAL.get()
        )
        size = queue_size if queue_size is not None else env.MLGRID_ASYNC_LOGGING_QUEUE_SIZE.get()
        self._queue: queue.Queue[_Item | _Flush] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failed: list[tuple[str, RunOperations, BaseException]] = []
        _loggers.add(self)
        _ensure_exit_hook()

    def _forget_inherited(self) -> None:
        """In a forked child: what is queued and the failures not yet seen are the parent's
        (its worker writes and reports them); the child queues, writes and reports its own.
        The queue and lock are new too: the parent's worker may have held them at the fork."""
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        self._lock = threading.Lock()
        self._thread = None
        self._failed = []

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="mlgrid-async-logging", daemon=True
                )
                self._thread.start()

    def log(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> RunOperations:
        """Queues data for ``run_id``; blocks only when the queue is full."""
        operation = RunOperations()
        self._ensure_worker()
        self._queue.put(_Item(run_id, list(metrics), list(params), list(tags), operation))
        return operation

    # -- worker ----------------------------------------------------------------------------

    def _gather(self, first: _Item | _Flush) -> tuple[list[_Item], list[_Flush]]:
        """Collects queued entries for up to the batch interval; a flush marker ends it early
        (flush() queues one, so a blocked get wakes up at once)."""
        items: list[_Item] = []
        flushes: list[_Flush] = []
        deadline = time.monotonic() + self._interval
        entry = first
        while True:
            if isinstance(entry, _Flush):
                flushes.append(entry)
                break
            items.append(entry)
            if len(items) >= MAX_ITEMS_PER_ROUND:
                break
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    entry = self._queue.get(timeout=remaining)
                else:
                    entry = self._queue.get_nowait()
            except queue.Empty:
                break
        return items, flushes

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            items, flushes = self._gather(first)
            try:
                self._send_items(items)
            finally:
                for _ in range(len(items) + len(flushes)):
                    self._queue.task_done()
                for flush in flushes:
                    flush.done.set()

    def _send_items(self, items: list[_Item]) -> None:
        for run_id, batch in _group(items):
            error: BaseException | None = None
            try:
                self._send(
                    run_id, batch.metrics, list(batch.params.values()), list(batch.tags.values())
                )
            except BaseException as exc:
                error = exc
                with self._lock:
                    self._failed.extend((run_id, op, exc) for op in batch.operations)
            for operation in batch.operations:
                operation._finish(error)

    # -- flushing --------------------------------------------------------------------------

    def flush(self, *, raise_errors: bool = True) -> None:
        """Waits until everything queued so far is written; then raises any failure nobody has
        seen yet (one exception summarising them, of the first failure's type)."""
        if self._thread is not None and self._thread.is_alive():
            marker = _Flush()
            self._queue.put(marker)
            marker.done.wait()
        with self._lock:
            failed = [entry for entry in self._failed if not entry[1]._observed]
            self._failed.clear()
        if not failed or not raise_errors:
            if failed:
                _report(failed)
            return
        raise _summarise(failed)


_loggers: weakref.WeakSet[AsyncLogger] = weakref.WeakSet()


def _forget_inherited_logging() -> None:
    for logger in list(_loggers):
        logger._forget_inherited()


os.register_at_fork(after_in_child=_forget_inherited_logging)


def _summarise(failed: list[tuple[str, RunOperations, BaseException]]) -> BaseException:
    run_id, _, first = failed[0]
    runs = sorted({entry[0] for entry in failed})
    message = (
        f"{len(failed)} queued logging operation(s) for run(s) {', '.join(runs)} failed; "
        f"first (run {run_id}): {first}"
    )
    if isinstance(first, MlgridException):
        error: BaseException = type(first)(message)
    else:
        error = MlgridException(message)
    error.__cause__ = first
    return error


def _report(failed: list[tuple[str, RunOperations, BaseException]]) -> None:
    print(f"mlgrid: {_summarise(failed)}", file=sys.stderr)


def flush_all(*, raise_errors: bool = True) -> None:
    """Flushes every logger in the process; raises the first failure after flushing all."""
    first_error: BaseException | None = None
    for logger in list(_loggers):
        try:
            logger.flush(raise_errors=raise_errors)
        except BaseException as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error


def _flush_at_exit() -> None:
    # Raising from an exit hook only prints a traceback; print a clear summary instead.
    flush_all(raise_errors=False)


def register_exit_hook(hook: Callable[[], None]) -> None:
    """Runs ``hook`` at interpreter exit while thread pools still work.

    Plain ``atexit`` hooks run after ``concurrent.futures`` has shut its thread pools down, so
    an embedded gRPC server (which runs on one) could no longer answer a final call and the
    call would hang. Hooks registered here run before that shutdown (later ones first).
    """
    import concurrent.futures.thread  # noqa: F401  (its own exit hook must be registered first)

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(hook)
    except RuntimeError:  # interpreter already shutting down, or another Python
        atexit.register(hook)


_exit_hook_registered = False


def _ensure_exit_hook() -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        register_exit_hook(_flush_at_exit)
