"""A hot statement run through libpq's prepared-statement calls, below psycopg's cursor.

psycopg's cursor spends more client CPU on a small statement than libpq does: converting the
query, dumping each parameter through its adapter map, the prepared-statement bookkeeping and
building a result. For the hottest statement of the tracking service (one ``log_metric``, every
parameter a scalar) that is ~80 µs against ~40 µs for ``PGconn.exec_prepared`` measured on the
same connection, i.e. ~15-25 µs per call once the pool and the rest are counted. So that one
statement is sent in libpq's text format and prepared once per connection under a fixed name,
and its answer is read as text.

Scope, on purpose narrow: parameters are ``str``, ``int``, ``float``, ``bool`` or None, each
cast in the SQL (so the server never has to guess a type), and every column of the answer
comes back as ``str`` (or None). Errors are psycopg's own classes (``error_from_result``), and a
connection that broke raises ``OperationalError``, as the cursor would, so callers and the pool
(services/common/pg_cursors.py) treat both paths alike. Inside a pipeline (group commit's
shared transactions) the statement runs through psycopg as ``sql``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors, pq

Row = tuple[Any, ...]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_ANSWERED = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
#: SQLSTATE 26000: no prepared statement of that name on this connection (yet).
_NOT_PREPARED = "26000"


def _text(value: object) -> bytes | None:
    """``value`` in PostgreSQL's text input format (the SQL casts it to its column's type)."""
    if value is None:
        return None
    if value is True:
        return b"t"
    if value is False:
        return b"f"
    if isinstance(value, float):
        return repr(value).encode()  # the shortest text that reads back as the same double
    return str(value).encode()


class RawStatement:
    """One statement with ``%(name)s`` placeholders, run prepared through libpq."""

    def __init__(self, name: str, sql: str) -> None:
        """``name`` is its prepared name on every connection (unique per statement; psycopg's
        own are ``_pg3_*``); ``sql`` its text with psycopg's named placeholders."""
        self.name = name.encode()
        #: The text as psycopg runs it (with the same named parameters).
        self.sql = sql
        self._params: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            param = match.group(1)
            if param not in self._params:
                self._params.append(param)
            return f"${self._params.index(param) + 1}"

        self._libpq_sql = _PLACEHOLDER.sub(numbered, sql).encode()

    def run(self, conn: psycopg.Connection[Any], params: Mapping[str, Any]) -> Row | None:
        """Runs the statement on ``conn`` (autocommit, idle, used by this thread alone); its
        first row, as text, or None."""
        pgconn = conn.pgconn
        # None goes to libpq as NULL (psycopg's type stubs leave it out of the sequence).
        values: list[Any] = [_text(params[name]) for name in self._params]
        result = pgconn.exec_prepared(self.name, values)
        if result.status not in _ANSWERED and self._state(result) == _NOT_PREPARED:
            # First use on this connection: prepare it, once for the connection's life.
            self._check(conn, pgconn.prepare(self.name, self._libpq_sql))
            result = pgconn.exec_prepared(self.name, values)
        self._check(conn, result)
        if result.ntuples == 0:
            return None
        encoding = conn.info.encoding
        return tuple(
            None if cell is None else cell.decode(encoding)
            for cell in (result.get_value(0, column) for column in range(result.nfields))
        )

    @staticmethod
    def _state(result: pq.abc.PGresult) -> str:
        state = result.error_field(pq.DiagnosticField.SQLSTATE)
        return state.decode() if state else ""

    @staticmethod
    def _check(conn: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
        if result.status in _ANSWERED:
            return
        if conn.pgconn.status == pq.ConnStatus.BAD:
            message = conn.pgconn.error_message.decode(errors="replace").strip()
            raise psycopg.OperationalError(message or "the connection to the database was lost")
        raise errors.error_from_result(result, encoding=conn.info.encoding)
