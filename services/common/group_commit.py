"""Group commit: concurrent single-statement writes share one transaction and one disk flush.

A durable commit waits for its log record to reach the disk (2 to 5 ms on an ordinary disk), so
writers that each commit alone are bounded by the flush rate. Here the statements of writers that
arrive together run in ONE transaction (pipelined: one round trip for BEGIN, the statements and
COMMIT) and every caller is answered only after that COMMIT returned, so nothing is acknowledged
before it is on disk.

Who commits: a writer that finds fewer than ``max_in_flight`` commits under way leads: it takes
up to ``max_batch`` waiting statements (its own among them) and commits them on its own
connection. When that many commits are under way, writers that arrive wait and go in the next
batch, led by one of them. So up to ``max_in_flight`` writers run side by side exactly as without
this class (PostgreSQL already lets concurrent commits share a WAL flush; serialising them on one
connection measured slower), and beyond that they share transactions instead of queueing for
connections one by one. No extra thread, no added latency for a lone writer.

Failures: a statement error aborts the shared transaction, and nothing of it is kept; each of its
statements then runs again on its own, so only the faulty one fails, with its own error. A lost
connection fails the whole batch with TemporarilyUnavailable (its commit may or may not have
happened, as for a lone statement); it is never replayed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
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


class _Write:
    """One caller's statement and, once committed, its first row or its error."""

    __slots__ = ("done", "error", "params", "row", "sql", "taken")

    def __init__(self, sql: str | RawStatement, params: Mapping[str, Any]) -> None:
        self.sql = sql
        self.params = params
        self.row: Row | None = None
        self.error: BaseException | None = None
        self.taken = False  # in a batch being committed
        self.done = False


class GroupCommit:
    """Runs single-statement writes of concurrent callers in shared transactions."""

    def __init__(
        self, cursors: PgCursors, *, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        self._cursors = cursors
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._cond = threading.Condition()
        self._waiting: list[_Write] = []
        self._in_flight = 0
        #: Transactions run so far (committed or rolled back), for tests and diagnostics.
        self.transactions = 0
        fork_safety.reset_in_child(self, GroupCommit._forget_inherited)

    def _forget_inherited(self) -> None:
        """In a forked child: the writes waiting or under way are the parent's threads'."""
        self._cond = threading.Condition()
        self._waiting = []
        self._in_flight = 0

    @property
    def waiting(self) -> int:
        """Writes queued behind the commits under way."""
        with self._cond:
            return len(self._waiting)

    def execute(self, sql: str | RawStatement, params: Mapping[str, Any]) -> Row | None:
        """Runs ``sql`` (one statement) durably; its first row (None for none) once committed.
        Raises what the statement raised when it ran on its own. A RawStatement committed
        alone runs through libpq (services/common/pg_raw.py; its row as text)."""
        write = _Write(sql, params)
        with self._cond:
            self._waiting.append(write)
        while True:
            with self._cond:
                while not write.done and (write.taken or self._in_flight >= self._max_in_flight):
                    self._cond.wait()
                if write.done:
                    break
                self._in_flight += 1
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                for taken in batch:
                    taken.taken = True
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
        if write.error is not None:
            raise write.error
        return write.row

    def _commit(self, batch: list[_Write]) -> None:
        """Commits ``batch``; every write in it ends done, with a row or an error."""
        try:
            if len(batch) == 1:
                self._commit_alone(batch[0])
            else:
                self._commit_together(batch)
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

    def _commit_together(self, batch: list[_Write]) -> None:
        self.transactions += 1
        cursor, _ = self._cursors.take()
        conn = cursor.connection
        try:
            with conn.pipeline(), conn.transaction():
                cursors = [conn.cursor() for _ in batch]
                for each, write in zip(cursors, batch, strict=True):
                    sql = write.sql.sql if isinstance(write.sql, RawStatement) else write.sql
                    each.execute(sql, write.params)
            rows = [each.fetchone() for each in cursors]
        except psycopg.Error as exc:
            if conn.broken:
                self._cursors.drop_idle()  # they most likely died with this one
                raise database_unavailable(self._cursors.database, exc) from exc
            # A statement failed (or a deadlock with another process's batch): the transaction
            # rolled back whole. Each statement runs again on its own to find whose it was.
            for write in batch:
                self._commit_alone(write)
            return
        finally:
            self._cursors.give_back(cursor)
        for write, row in zip(batch, rows, strict=True):
            write.row, write.done = row, True
