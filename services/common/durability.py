"""When a store's commit returns: the one durability policy of the SQL stores.

By default every acknowledged write is on disk when the call returns, as MLflow's server does:
PostgreSQL sessions keep ``synchronous_commit=on`` (the server's default) and SQLite syncs its
write-ahead log on every commit (``synchronous=FULL``; in WAL mode NORMAL survives a crash of the
process but not of the machine). The throughput that costs is won back by committing concurrent
writers together (group_commit.py), not by skipping the disk.

``MLGRID_STORE_ASYNC_COMMIT=true`` is the explicit opt-out: commits return before their log
record is flushed (PostgreSQL ``synchronous_commit=off``, SQLite ``synchronous=NORMAL``); a crash
of the database host can then lose the last acknowledged writes, never part of one. A PostgreSQL
URI that sets ``options=-c synchronous_commit=…`` itself always wins. MySQL/MariaDB: InnoDB's
``innodb_flush_log_at_trx_commit`` is a server-wide setting (1, durable, is its default); the
stores neither change it nor can choose it per session.
"""

from __future__ import annotations

from mlgrid import environment as env

#: The libpq ``options`` that make a PostgreSQL session commit asynchronously.
PG_ASYNC_COMMIT_OPTIONS = "-c synchronous_commit=off"


def async_commit() -> bool:
    """True when the deployment chose fast, less durable commits (MLGRID_STORE_ASYNC_COMMIT)."""
    return env.MLGRID_STORE_ASYNC_COMMIT.get()


def pg_session_options(uri: str) -> str:
    """libpq ``options`` to add to a PostgreSQL store's sessions ("" for the server's durable
    default): none when the URI chooses synchronous_commit itself."""
    if async_commit() and "synchronous_commit" not in uri:
        return PG_ASYNC_COMMIT_OPTIONS
    return ""


def sqlite_synchronous() -> str:
    """SQLite's ``PRAGMA synchronous`` level for a store's connections."""
    return "NORMAL" if async_commit() else "FULL"
