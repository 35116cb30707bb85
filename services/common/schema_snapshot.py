"""A fresh SQLite store created at the newest revision in one transaction, without Alembic.

Embedded mode opens a new SQLite file on a newcomer's first script; replaying every migration
there cost importing Alembic (~0.3 s of CPU) plus the migrations themselves, and reopening a
store that is already current still imported Alembic to learn so. Each service's migrations
folder therefore keeps ``sqlite_head.sql``: what its migrations leave in an empty SQLite
database (the ``sqlite_master`` statements, then the rows they insert, the version row among
them), written by this module's ``main`` and checked against the migrations by
tests/tracking/test_schema_snapshot.py.

:func:`apply` runs inside the migration's write transaction (BEGIN IMMEDIATE, so processes that
start together take turns): a database holding none of the service's tables gets the snapshot,
one whose version row is the snapshot's revision is left alone, and anything else (an older
revision, a partial schema) is left to Alembic. Other databases always go through Alembic.

Seeded timestamps (columns named ``*_time``) are written as the moment the store is created,
as the migration would have written them.
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

log = logging.getLogger(__name__)

#: The file each migrations folder keeps (next to its env.py).
FILE_NAME = "sqlite_head.sql"
#: The migration packages that keep one: the stores an embedded stack creates.
SERVICES = ("mlgrid_services.tracking.migrations", "mlgrid_services.registry.migrations")
#: SQLite's "now" in epoch milliseconds, what the migrations' ``int(time.time() * 1000)`` gives.
NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
_REVISION_LINE = re.compile(r"^-- revision: (\S+)$", re.MULTILINE)
_TABLE_LINE = re.compile(r"^-- table: (\S+)$", re.MULTILINE)
_MIGRATIONS_LINE = re.compile(r"^-- migrations: (.*)$", re.MULTILINE)
#: Statements are separated by a line of their own (a trigger's body holds semicolons).
SEPARATOR = "\n-- ;\n"


@dataclass(frozen=True)
class Snapshot:
    revision: str
    tables: list[str]
    statements: list[str]


def migration_files(script_location: str | Path) -> list[str]:
    """The migration scripts in a service's ``versions`` folder, by name."""
    versions = Path(script_location) / "versions"
    return sorted(p.name for p in versions.glob("*.py") if p.name != "__init__.py")


def read(script_location: str | Path) -> Snapshot | None:
    """The snapshot kept beside a service's migrations; None when it has none, or when it was
    written before the migrations there now (a migration added since: Alembic runs them)."""
    path = Path(script_location) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    revision = _REVISION_LINE.search(text)
    built_from = _MIGRATIONS_LINE.search(text)
    if revision is None or built_from is None:
        raise ValueError(f"{path} names no revision or no migrations")
    if built_from.group(1).split() != migration_files(script_location):
        log.warning("%s is older than the migrations beside it; migrating with Alembic", path)
        return None
    body = text.split(SEPARATOR, 1)[1] if SEPARATOR in text else ""
    statements = [s for s in body.split(SEPARATOR) if s.strip()]
    return Snapshot(revision.group(1), _TABLE_LINE.findall(text), statements)


def apply(conn: Connection, snapshot: Snapshot, version_table: str) -> bool:
    """True when the database is at the snapshot's revision on return (created now, or
    already there); False when Alembic must take it from here."""
    existing = {
        row[0]
        for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").all()
    }
    if version_table in existing:
        current = conn.exec_driver_sql(f"SELECT version_num FROM {version_table}").all()
        return [row[0] for row in current] == [snapshot.revision]
    if existing & set(snapshot.tables):
        return False  # some of the schema without its version row: Alembic's to judge
    for statement in snapshot.statements:
        conn.exec_driver_sql(statement)
    return True


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    return "'" + str(value).replace("'", "''") + "'"


def dump(conn: Connection, revision: str, script_location: str | Path) -> str:
    """The snapshot text of the database behind ``conn`` (just migrated, nothing else in it)."""
    objects = conn.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).all()
    tables = [name for kind, name, _ in objects if kind == "table"]
    statements = [sql for _, _, sql in objects]
    for table in tables:
        columns = [row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info('{table}')")]
        for row in conn.exec_driver_sql(f'SELECT * FROM "{table}" ORDER BY rowid').all():
            values = [
                NOW_MS if column.endswith("_time") and isinstance(value, int) else _literal(value)
                for column, value in zip(columns, row, strict=True)
            ]
            names = ", ".join(f'"{c}"' for c in columns)
            statements.append(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(values)})')
    header = [
        "-- What this service's migrations leave in an empty SQLite database, at this revision.",
        "-- Written by python -m mlgrid_services.common.schema_snapshot; do not edit by hand.",
        f"-- revision: {revision}",
        f"-- migrations: {' '.join(migration_files(script_location))}",
        *(f"-- table: {table}" for table in tables),
    ]
    return "\n".join(header) + SEPARATOR + SEPARATOR.join(statements) + "\n"


def migrated_dump(upgrade: object, script_location: str | Path, version_table: str) -> str:
    """Runs a service's migrations (``upgrade(uri)``) on an empty SQLite file and dumps it."""
    from mlgrid_services.common.sql import current_revision, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/snapshot.db")
        try:
            upgrade(engine)  # type: ignore[operator]
            revision = current_revision(engine, version_table)
            assert revision is not None
            with engine.connect() as conn:
                return dump(conn, revision, script_location)
        finally:
            engine.dispose()


def main() -> int:
    """Rewrites the snapshot of every service with SQL migrations (after adding a migration)."""
    import importlib

    for module in SERVICES:
        migrations = importlib.import_module(module)
        text = migrated_dump(
            migrations.upgrade, migrations.SCRIPT_LOCATION, migrations.VERSION_TABLE
        )
        path = Path(migrations.SCRIPT_LOCATION) / FILE_NAME
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
