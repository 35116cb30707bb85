"""SQL engine and migration helpers shared by the SQL-backed services (tracking, registry).

- :func:`make_engine` builds an engine tuned per database: SQLite in WAL mode with a busy timeout
  (so concurrent writers wait instead of failing), PostgreSQL through psycopg 3 with a pool sized
  for the gRPC worker threads.
- :func:`upgrade_database` runs a service's Alembic migrations programmatically. Each service keeps
  its own version table (``alembic_version_<service>``) so several services can share one database.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable

from . import fork_safety, process_role, schema_snapshot
from .durability import pg_session_options, sqlite_synchronous

#: Schemes accepted for PostgreSQL; all become psycopg 3's SQLAlchemy dialect.
_POSTGRES_ALIASES = ("postgresql://", "postgres://", "postgresql+psycopg2://")
#: Schemes accepted for MySQL and MariaDB; all become SQLAlchemy's MySQL dialect over PyMySQL
#: (one dialect name, "mysql", for both; MariaDB is told apart by the server's version).
_MYSQL_ALIASES = ("mysql://", "mariadb://", "mysql+pymysql://", "mariadb+pymysql://")

#: Milliseconds a SQLite connection waits for a lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option a store sets on connections that will write; on SQLite their transaction
#: starts with BEGIN IMMEDIATE, so two writers queue on the lock instead of deadlocking when both
#: try to upgrade a read lock.
WRITE_OPTION = "mlgrid_write"


def database_unavailable(database: str, exc: Exception) -> TemporarilyUnavailable:
    """The caller's error for a database that cannot be reached (or stays locked past the busy
    timeout): retryable TEMPORARILY_UNAVAILABLE naming it, with the driver's first line."""
    first_line = (str(exc).splitlines() or [""])[0]
    return TemporarilyUnavailable(f"The {database} database is unavailable: {first_line[:300]}")


def normalize_db_uri(uri: str) -> str:
    """``uri`` with PostgreSQL spellings mapped to ``postgresql+psycopg://``."""
    for alias in _POSTGRES_ALIASES:
        if uri.startswith(alias):
            return "postgresql+psycopg://" + uri[len(alias) :]
    for alias in _MYSQL_ALIASES:
        if uri.startswith(alias):
            return "mysql+pymysql://" + uri[len(alias) :]
    return uri


def _sqlite_path(uri: str) -> Path | None:
    url = make_url(uri)
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Durable by default: the WAL is synced at every commit (durability.py).
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous()}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # MLflow's LIKE is case-sensitive (ILIKE is the insensitive one); SQLite's is not by default.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _configure_postgres(engine: Engine, session_options: str) -> None:
    """Applies ``session_options`` (``-c name=value`` pairs, durability.py) to each new session;
    set here rather than as the libpq ``options`` argument, which would replace the URI's own."""
    settings = [part.split("=", 1) for part in session_options.split() if part != "-c"]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            for name, value in settings:
                cursor.execute(f"SET {name} TO {value}")
        dbapi_connection.commit()


def _require_utf8(engine: Engine) -> None:
    """Refuses a PostgreSQL database whose encoding is SQL_ASCII, with one line naming it.

    Such a database stores bytes unchecked: psycopg hands text back as bytes (SQLAlchemy's
    first query fails with a TypeError), and lengths, LIKE/ILIKE and ordering would count and
    compare bytes, not the characters the stores validate. Runs before SQLAlchemy's own first
    query (``insert``), from the server's reported encoding: no statement is sent."""

    @event.listens_for(engine, "connect", insert=True)
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        encoding = dbapi_connection.info.parameter_status("server_encoding")
        if encoding != "SQL_ASCII":
            return
        dbapi_connection.close()
        url = engine.url
        raise InvalidParameterValue(
            f"the PostgreSQL database {url.database!r} on {url.host or 'localhost'}:"
            f"{url.port or 5432} has encoding SQL_ASCII; mlgrid needs UTF8: create one with "
            f"createdb -E UTF8 -T template0 -h {url.host or 'localhost'} "
            f"-U {url.username or 'postgres'} <name> and point the store URI at it"
        )


def _tie_connections_to_calls(engine: Engine, backend: str) -> None:
    """Each checked-out connection is tied to the gRPC call being served (see call_scope): when
    the call ends early its statement is cancelled (PostgreSQL) or interrupted (SQLite). On
    PostgreSQL a pooled connection the server has closed (a restart) is replaced at checkout
    instead of failing the call."""
    from sqlalchemy.exc import DisconnectionError

    from .call_scope import register_for_call

    if backend == "postgresql":
        # Imports psycopg (~9 MiB): not for a SQLite engine.
        from .pg_cursors import connection_alive

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if backend == "postgresql" and not connection_alive(dbapi_connection):
            raise DisconnectionError("the server closed this pooled connection")
        cancel = dbapi_connection.cancel if backend == "postgresql" else dbapi_connection.interrupt
        record.info["mlgrid_release_call"] = register_for_call(cancel)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        release = record.info.pop("mlgrid_release_call", None)
        if release is not None:
            release()


def _configure_mysql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            # The Default experiment has id 0: without this mode MySQL reads an inserted 0 in an
            # AUTO_INCREMENT column as "the next number".
            cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")


def make_engine(uri: str, **overrides: Any) -> Engine:
    """A SQLAlchemy engine for ``uri`` (``sqlite:///…``, ``postgresql://…``, ``postgres://…``).

    SQLite: the database's directory must exist (the file is created), WAL, busy_timeout, foreign keys. PostgreSQL: psycopg
    3, a pool big enough for a gRPC server's worker threads. MySQL/MariaDB: PyMySQL, utf8mb4,
    READ COMMITTED (as PostgreSQL: a write transaction sees what others committed before each
    statement, which the stores' write-once checks rely on). Commits are durable unless the
    deployment opts out (durability.py).
    ``overrides`` go to :func:`sqlalchemy.create_engine` unchanged.
    """
    uri = normalize_db_uri(uri)
    try:
        url = make_url(uri)
    except Exception as exc:
        raise InvalidParameterValue(
            f"store URI {uri[:200]!r} is not a database URL ({exc}); expected sqlite:///path, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from exc
    backend = url.get_backend_name()
    options: dict[str, Any] = {}
    if backend == "sqlite":
        path = _sqlite_path(uri)
        if path is not None:
            # The file is created, its directory is not: a typo in the path must not quietly
            # make a tree of directories and an empty store somewhere unexpected.
            parent = path.expanduser().absolute().parent
            if not parent.is_dir():
                raise InvalidParameterValue(
                    f"store URI {uri[:200]!r}: directory {str(parent)[:200]!r} does not exist; "
                    "create it first, or correct the path"
                )
        options.update(pool_size=8, max_overflow=16, connect_args={"check_same_thread": False})
        if path is None:
            # An in-memory database exists once per connection: share one.
            from sqlalchemy.pool import StaticPool

            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    elif backend == "postgresql":
        options.update(pool_size=10, max_overflow=22, pool_recycle=1800, pool_timeout=30)
    elif backend == "mysql":
        options.update(
            pool_size=10,
            max_overflow=22,
            pool_recycle=1800,
            pool_timeout=30,
            isolation_level="READ COMMITTED",
            connect_args={"charset": "utf8mb4"},
        )
    options.update(overrides)
    engine = create_engine(url, **options)
    if not (backend == "sqlite" and _sqlite_path(uri) is None):  # in memory: the child's own
        fork_safety.reset_in_child(engine, _forget_inherited_pool)
    if backend in ("sqlite", "postgresql"):
        _tie_connections_to_calls(engine, backend)
    if backend == "postgresql":
        _require_utf8(engine)
    if backend == "sqlite":
        _configure_sqlite(engine)
    elif backend == "postgresql" and pg_session_options(uri):
        _configure_postgres(engine, pg_session_options(uri))
    elif backend == "mysql":
        _configure_mysql(engine)
    return engine


def _forget_inherited_pool(engine: Engine) -> None:
    """In a forked child: a new pool; the inherited one holds the parent's sessions (and
    SQLite's file locks are the parent's)."""
    engine.dispose(close=False)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction meant to write (BEGIN IMMEDIATE on SQLite)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


_migration_lock = threading.Lock()


def upgrade_database(
    uri_or_engine: str | Engine,
    script_location: str | Path,
    version_table: str,
    revision: str = "head",
) -> None:
    """Brings the database to ``revision`` with the Alembic scripts in ``script_location``.

    ``version_table`` is the service's own table (e.g. ``alembic_version_tracking``), so the
    tracking and registry services can share a database without stepping on each other.
    """
    engine = make_engine(uri_or_engine) if isinstance(uri_or_engine, str) else uri_or_engine
    # A database already at the newest migration (every restart after the first) is left
    # alone without loading Alembic (~9 MiB of RSS per service, ~19 MiB for the projects one).
    head = head_revision(script_location) if revision == "head" else None
    if head is not None and _version_rows(engine, version_table) == [head]:
        if isinstance(uri_or_engine, str):
            engine.dispose()
        return
    # A new SQLite store is created at head from the snapshot beside the migrations, also
    # without Alembic (schema_snapshot.py); other databases are migrated by Alembic.
    snapshot = None
    if revision == "head" and engine.dialect.name == "sqlite":
        snapshot = schema_snapshot.read(script_location)
    if process_role.long_lived_service and engine.dialect.name != "sqlite":
        # Alembic's modules would stay in the service for its whole life (process_role.py).
        _upgrade_in_child(engine, script_location, version_table, revision)
        if isinstance(uri_or_engine, str):
            engine.dispose()
        return
    # BEGIN IMMEDIATE on SQLite / an advisory lock on PostgreSQL: processes starting together on
    # one database migrate one after the other, and the later ones find the schema current.
    with _migration_lock, _first_contact(engine), write_transaction(engine) as conn:
        if snapshot is None or not schema_snapshot.apply(conn, snapshot, version_table):
            _alembic_upgrade(conn, script_location, version_table, revision)
    if isinstance(uri_or_engine, str):
        engine.dispose()


_REVISION_LINE = re.compile(r"^(down_)?revision(?:: [^=]+)? = (.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def head_revision(script_location: str | Path) -> str | None:
    """The newest revision of a service's migrations (``versions/*.py``), read from their
    ``revision`` and ``down_revision`` lines without importing Alembic: the one revision no
    other names as its ``down_revision``. None when that is not a single revision (branches,
    or a script this cannot read): Alembic then decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for name in schema_snapshot.migration_files(script_location):
        text = (Path(script_location) / "versions" / name).read_text(encoding="utf-8")
        found = {bool(m.group(1)): m.group(2) for m in _REVISION_LINE.finditer(text)}
        own = _QUOTED.findall(found.get(False, ""))
        if len(own) != 1 or True not in found:
            return None
        revisions.add(own[0])
        parents.update(_QUOTED.findall(found[True]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _upgrade_in_child(
    engine: Engine, script_location: str | Path, version_table: str, revision: str
) -> None:
    """upgrade_database in a child process (migrate_child.py), which exits when done."""
    import json
    import subprocess
    import sys

    request = {
        "uri": engine.url.render_as_string(hide_password=False),
        "script_location": str(script_location),
        "version_table": version_table,
        "revision": revision,
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlgrid_services.common.migrate_child"],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"migrating the database schema ({version_table}) failed: {lines[-1]}")


def _alembic_upgrade(
    conn: Connection, script_location: str | Path, version_table: str, revision: str
) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("version_table", version_table)
    if conn.dialect.name == "postgresql":
        # Several processes may start at once on one database: migrate one at a time.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_lock_id(version_table)})")
    mysql_lock = f"mlgrid_{version_table}" if conn.dialect.name == "mysql" else None
    if mysql_lock:
        # The same with MySQL's named lock, held by the session until released.
        conn.exec_driver_sql(f"SELECT GET_LOCK('{mysql_lock}', 300)")
    config.attributes["connection"] = conn
    config.attributes["version_table"] = version_table
    try:
        command.upgrade(config, revision)
    finally:
        if mysql_lock:
            conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{mysql_lock}')")


@contextmanager
def _first_contact(engine: Engine) -> Iterator[None]:
    """The first connection of a service to its database: a database that does not exist, or a
    server that cannot be reached, becomes one line naming it and what to do, instead of a
    driver traceback."""
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        url = engine.url
        where = f"{url.host or 'localhost'}:{url.port or 5432}" if url.host else str(url.database)
        first = (str(exc.orig or exc).splitlines() or [""])[0][:300]
        if "does not exist" in first and url.get_backend_name() == "postgresql":
            raise InvalidParameterValue(
                f"the database {url.database!r} does not exist on {where}: create it "
                f"(createdb -h {url.host or 'localhost'} -U {url.username or 'postgres'} "
                f"{url.database}) or fix the store URI (--backend-store-uri, "
                "MLGRID_BACKEND_STORE_URI)"
            ) from None
        raise TemporarilyUnavailable(
            f"cannot open the database at {where}: {first}; check that it is running and that "
            "the store URI (--backend-store-uri, MLGRID_BACKEND_STORE_URI) is right"
        ) from None


def _lock_id(name: str) -> int:
    import zlib

    return zlib.crc32(name.encode())


def _version_rows(engine: Engine, version_table: str) -> list[str] | None:
    """The revisions in a service's version table, without Alembic (None: no such table)."""
    with _first_contact(engine), engine.connect() as conn:
        if not sa.inspect(conn).has_table(version_table):
            return None
        return [
            str(row[0]) for row in conn.execute(sa.text(f"SELECT version_num FROM {version_table}"))
        ]


def current_revision(engine: Engine, version_table: str) -> str | None:
    """The revision the database is at for one service (None when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": version_table})
        return context.get_current_revision()


def run_migrations_online(context: Any, target_metadata: Any = None) -> None:
    """Body of a service's Alembic ``env.py``: migrate on the connection handed over above."""
    config = context.config
    conn = config.attributes.get("connection")
    version_table = config.attributes.get("version_table") or config.get_main_option(
        "version_table"
    )
    if conn is None:
        # Invoked by the alembic command line: build an engine from sqlalchemy.url.
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as own:
            _configure_and_run(context, own, target_metadata, version_table)
        engine.dispose()
        return
    _configure_and_run(context, conn, target_metadata, version_table)


def _configure_and_run(context: Any, conn: Connection, metadata: Any, version_table: str) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
