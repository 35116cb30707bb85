"""Group commit: concurrent single-statement writes share one transaction and one disk flush.

A durable commit waits for its log record to reach the disk (2 to 5 ms on an ordinary disk), so
writers that each commit alone are bounded by the flush rate. Here the statements of writers that
arrive together run in ONE transaction (pipelined: one round trip for BEGIN, the statements and
COMMIT) and every caller is answered only after that COMMIT returned, so nothing is acknowledged
before it is on disk.

Who commits: a writer that finds fewer than ``merging_in_flight`` commits under way leads: it
takes up to ``max_batch`` waiting statements (its own among them) and commits them on its own
connection. When that many commits are under way, writers that arrive queue for the next batch:
the leader that finishes first hands the queue to one of them, which commits it, and each
writer is woken alone (its own lock). A queued writer still waiting after ``patience`` commits
on its own, up to ``max_in_flight`` commits at once, so a commit held on a row lock holds no one
up for longer than that. No extra thread, no added latency for a lone writer.

Merged statements: a statement that knows how (a Mergeable) runs ONCE for all of its writes in a
batch: one log_metric statement of eight points costs the database and the service much less
than eight (one parse, plan, executor start and round trip instead of eight), and a batch that
is one such statement needs no BEGIN and COMMIT around it (a statement in autocommit is its own
transaction). Each caller still gets its own answer, cut from the merged statement's rows.

Failures: a statement error aborts the shared transaction, and nothing of it is kept; each of its
statements then runs again on its own, so only the faulty one fails, with its own error. A lost
connection fails the whole batch with TemporarilyUnavailable (its commit may or may not have
happened, as for a lone statement); it is never replayed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from . import fork_safety
from .pg_cursors import PgCursors
from .pg_raw import RawStatement
from .sql import database_unavailable

Row = tuple[Any, ...]

#: Statements committed together at most (bounds one transaction's locks and latency).
MAX_BATCH = 64
#: Commits under way at once, each on its own pooled connection (the stores keep 8 idle).
MAX_IN_FLIGHT = 8
#: Commits under way beyond which an arriving writer queues for the next batch, where its
#: statement may be merged with others (Mergeable). With 8 processes logging on 2 cores, 2 (with
#: merging) halved PostgreSQL's CPU per log_metric against 8 (0.13 against 0.26 ms) while the
#: service spent ~0.06 ms more: the same throughput there, and the database, which replicas of
#: the service share, does half the work (docs/benchmarks.md).
MERGING_IN_FLIGHT = 2
#: Seconds a queued writer waits for a leader before it commits on its own (up to MAX_IN_FLIGHT):
#: a commit held on a row lock must not hold up every other writer of the process.
QUEUE_PATIENCE = 0.02


@dataclass(frozen=True)
class Merged:
    """A statement run for one or more writes (a Mergeable's merged), and how to cut each
    write's answer from its rows."""

    sql: str
    params: Mapping[str, Any]
    #: Each write's first row (in the writes' order), from all the rows the statement returned.
    answers: Callable[[list[Row]], list[Row | None]]


class Mergeable(RawStatement):
    """A RawStatement whose concurrent writes may run as ONE statement (``merge``)."""

    def __init__(
        self, name: str, sql: str, merge: Callable[[Sequence[Mapping[str, Any]]], Merged]
    ) -> None:
        super().__init__(name, sql)
        self.merge = merge


class _Write:
    """One caller's statement and, once committed, its first row or its error."""

    __slots__ = ("batch", "done", "error", "params", "queued", "row", "signal", "sql")

    def __init__(self, sql: str | RawStatement, params: Mapping[str, Any]) -> None:
        self.sql = sql
        self.params = params
        self.row: Row | None = None
        self.error: BaseException | None = None
        self.done = False
        self.queued = False  # in GroupCommit._waiting
        #: Set when this write's caller is to commit a batch (its own write among them).
        self.batch: list[_Write] | None = None
        # Held until the caller is woken: its write is done, or it leads a batch. A lock per
        # caller wakes exactly that caller, where a shared Condition's notify_all woke every
        # waiting thread after each commit, most of them to wait again.
        self.signal = threading.Lock()
        self.signal.acquire()


class GroupCommit:
    """Runs single-statement writes of concurrent callers in shared transactions."""

    def __init__(
        self,
        cursors: PgCursors,
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
        merging_in_flight: int = MERGING_IN_FLIGHT,
        patience: float = QUEUE_PATIENCE,
    ) -> None:
        self._cursors = cursors
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._merging_in_flight = min(merging_in_flight, max_in_flight)
        self._patience = patience
        self._lock = threading.Lock()
        self._waiting: list[_Write] = []
        self._in_flight = 0
        #: Transactions run so far (committed or rolled back), for tests and diagnostics.
        self.transactions = 0
        fork_safety.reset_in_child(self, GroupCommit._forget_inherited)

    def _forget_inherited(self) -> None:
        """In a forked child: the writes waiting or under way are the parent's threads'."""
        self._lock = threading.Lock()
        self._waiting = []
        self._in_flight = 0

    @property
    def waiting(self) -> int:
        """Writes queued behind the commits under way."""
        with self._lock:
            return len(self._waiting)

    def execute(self, sql: str | RawStatement, params: Mapping[str, Any]) -> Row | None:
        """Runs ``sql`` (one statement) durably; its first row (None for none) once committed.
        Raises what the statement raised when it ran on its own. A RawStatement committed
        alone runs through libpq (services/common/pg_raw.py; its row as text)."""
        write = _Write(sql, params)
        with self._lock:
            if self._in_flight < self._merging_in_flight:
                self._lead_next(write)
            else:
                write.queued = True
                self._waiting.append(write)
        # Until done, or handed a batch to lead; past the patience, on its own if it can.
        if write.batch is None and not write.signal.acquire(timeout=self._patience):
            with self._lock:
                if write.queued and self._in_flight < self._max_in_flight:
                    self._waiting.remove(write)
                    self._lead_next(write)
            if write.batch is None:
                write.signal.acquire()
        if write.batch is not None:
            # Taken off the write before it is committed: the batch lists its leader, and a
            # write that kept it would be a reference cycle, garbage only the cyclic collector
            # could free (one per call: its collections then ran every ~170 calls).
            batch, write.batch = write.batch, None
            self._lead(write, batch)
        if write.error is not None:
            raise write.error
        return write.row

    def _lead_next(self, leader: _Write) -> None:
        """(Under the lock.) ``leader`` (not in the queue) takes a commit slot and the writes
        waiting."""
        self._in_flight += 1
        leader.batch = [leader, *self._waiting[: self._max_batch - 1]]
        del self._waiting[: self._max_batch - 1]
        for write in leader.batch:
            write.queued = False

    def _lead(self, leader: _Write, batch: list[_Write]) -> None:
        """Commits ``batch``, then hands the writes that queued meanwhile to one of them (the
        commit slot passes on) and wakes the others of ``batch``."""
        try:
            self._commit(batch)
        finally:
            with self._lock:
                self._in_flight -= 1
                following = self._waiting[:1]
                if following:
                    del self._waiting[0]
                    self._lead_next(following[0])
            if following:
                following[0].signal.release()
            for write in batch:
                if write is not leader:
                    write.signal.release()

    def _commit(self, batch: list[_Write]) -> None:
        """Commits ``batch``; every write in it ends done, with a row or an error."""
        try:
            if len(batch) == 1:  # the lone writer's path: nothing to merge or pipeline
                self._commit_alone(batch[0])
                return
            units = _units(batch)
            if len(units) == 1:
                self._commit_merged(units[0])
            else:
                self._commit_together(units)
        except BaseException as exc:  # never leave a caller waiting for ever
            for write in batch:
                if not write.done:
                    write.error, write.done = exc, True
            raise

    def _commit_alone(self, write: _Write) -> None:
        self.transactions += 1
        try:
            with self._cursors.cursor() as cursor:
                if isinstance(write.sql, RawStatement):
                    write.row = write.sql.run(cursor.connection, write.params)
                else:
                    write.row = cursor.execute(write.sql, write.params).fetchone()
        except Exception as exc:
            write.error = exc
        write.done = True

    def _commit_merged(self, unit: _Unit) -> None:
        """One merged statement, alone: autocommit makes it its own transaction."""
        self.transactions += 1
        # Not cancelled with the leader's call (cursors.cursor() would): the statement is every
        # writer's, not the leader's alone.
        cursor, _ = self._cursors.take()
        conn = cursor.connection
        try:
            rows = cursor.execute(unit.statement.sql, unit.statement.params).fetchall()
        except psycopg.Error as exc:
            self._after_failure(conn, exc, unit.writes)
            return
        finally:
            self._cursors.give_back(cursor)
        unit.answer(rows)

    def _commit_together(self, units: list[_Unit]) -> None:
        self.transactions += 1
        cursor, _ = self._cursors.take()
        conn = cursor.connection
        try:
            with conn.pipeline(), conn.transaction():
                cursors = [conn.cursor() for _ in units]
                for each, unit in zip(cursors, units, strict=True):
                    each.execute(unit.statement.sql, unit.statement.params)
            answers = [each.fetchall() for each in cursors]
        except psycopg.Error as exc:
            self._after_failure(conn, exc, [write for unit in units for write in unit.writes])
            return
        finally:
            self._cursors.give_back(cursor)
        for unit, rows in zip(units, answers, strict=True):
            unit.answer(rows)

    def _after_failure(
        self, conn: psycopg.Connection[Any], exc: psycopg.Error, writes: list[_Write]
    ) -> None:
        """After a shared statement or transaction failed: nothing of it was kept."""
        if conn.broken:
            self._cursors.drop_idle()  # they most likely died with this one
            raise database_unavailable(self._cursors.database, exc) from exc
        # A statement failed (or a deadlock with another process's batch): the transaction
        # rolled back whole. Each statement runs again on its own to find whose it was.
        for write in writes:
            self._commit_alone(write)


@dataclass(frozen=True)
class _Unit:
    """A statement of a batch: one write's, or the writes of one Mergeable merged into one."""

    statement: Merged
    writes: list[_Write]

    def answer(self, rows: list[Row]) -> None:
        """Marks the writes done with their rows, from the rows the statement returned."""
        for write, row in zip(self.writes, self.statement.answers(rows), strict=True):
            write.row, write.done = row, True


def _first_row(rows: list[Row]) -> list[Row | None]:
    return [rows[0] if rows else None]


def _units(batch: list[_Write]) -> list[_Unit]:
    """``batch`` as statements to run: the writes of each Mergeable that has several in the
    batch become one merged statement (in the place of its first write)."""
    groups: dict[Mergeable, list[_Write]] = {}
    for write in batch:
        if isinstance(write.sql, Mergeable):
            groups.setdefault(write.sql, []).append(write)
    units: list[_Unit] = []
    for write in batch:
        group = groups.get(write.sql) if isinstance(write.sql, Mergeable) else None
        if group is None or len(group) == 1:
            sql = write.sql.sql if isinstance(write.sql, RawStatement) else write.sql
            units.append(_Unit(Merged(sql, write.params, _first_row), [write]))
        elif group[0] is write:
            statement = write.sql
            assert isinstance(statement, Mergeable)
            units.append(_Unit(statement.merge([w.params for w in group]), group))
    return units
