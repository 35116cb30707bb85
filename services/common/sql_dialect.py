"""What differs between the SQL databases the stores run on, in one place: each store operation
has one statement, built here where a database spells it its own way.

- :func:`insert_ignore`: insert rows, skipping those whose key is already stored
  (``ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite, ``INSERT IGNORE`` on MySQL/MariaDB).
- :func:`upsert`: insert rows, or overwrite the named columns of a row with the same key
  (``ON CONFLICT … DO UPDATE`` / ``ON DUPLICATE KEY UPDATE``).
- :func:`ids_condition` / :func:`ids_value`: ``column IN <many ids>``, bound as ONE parameter
  where the database allows (a PostgreSQL array, a JSON list on SQLite), so statements over a
  page of up to 50,000 runs stay cheap to build and within SQLite's limit on bound parameters;
  MySQL/MariaDB take an expanded list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

# sqlalchemy.dialects.postgresql and .mysql are imported where a statement for that database is
# built: a SQLite store (embedded mode) starts without them (psycopg; ~18 ms of MySQL dialects).

POSTGRESQL = "postgresql"
SQLITE = "sqlite"
#: SQLAlchemy names MariaDB's dialect "mysql" too (its is_mariadb flag tells them apart).
MYSQL = "mysql"


def table_options(conn: Any) -> dict[str, Any]:
    """Options of the tables a migration creates on ``conn``'s database: on MySQL/MariaDB,
    InnoDB with a binary, no-pad collation, so names, keys and LIKE compare exactly as on
    PostgreSQL and SQLite (MySQL's default collations ignore case and trailing spaces)."""
    if conn.dialect.name != MYSQL:
        return {}
    collation = "utf8mb4_nopad_bin" if conn.dialect.is_mariadb else "utf8mb4_0900_bin"
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": collation}


def typed_null(dialect: str, type_: Any) -> Any:
    """NULL of ``type_`` for a slot of a UNION arm (PostgreSQL wants each arm's types known);
    MySQL/MariaDB cannot CAST to every type and type a UNION by all its arms: a bare NULL."""
    if dialect == MYSQL:
        return sa.null()
    return sa.null().cast(type_)


def ascii_key(length: int) -> Any:
    """A key column's type: on MySQL/MariaDB stored as ASCII (keys are validated to
    [A-Za-z0-9_ ./:-]), so composite keys fit InnoDB's 3,072-byte limit (4 bytes per utf8mb4
    character otherwise)."""
    from sqlalchemy.dialects import mysql

    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="ascii", collation="ascii_bin"), MYSQL
    )


def insert_ignore(dialect: str, table: sa.Table) -> Any:
    """An INSERT into ``table`` that skips rows whose primary or unique key is stored already."""
    if dialect == MYSQL:
        from sqlalchemy.dialects import mysql

        return mysql.insert(table).prefix_with("IGNORE")
    return _insert_module(dialect).insert(table).on_conflict_do_nothing()


def upsert(dialect: str, table: sa.Table, key: Sequence[str], columns: Sequence[str]) -> Any:
    """An INSERT into ``table`` that, for a row whose key ``key`` exists, sets ``columns`` to
    the new row's values instead (last writer wins)."""
    if dialect == MYSQL:
        from sqlalchemy.dialects import mysql

        statement = mysql.insert(table)
        return statement.on_duplicate_key_update(
            {name: statement.inserted[name] for name in columns}
        )
    statement = _insert_module(dialect).insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in columns}
    )


def _insert_module(dialect: str) -> Any:
    """PostgreSQL's or SQLite's dialect module: both spell ``ON CONFLICT`` alike."""
    if dialect == POSTGRESQL:
        from sqlalchemy.dialects import postgresql

        return postgresql
    return sqlite


def ids_condition(dialect: str, column: Any, name: str = "ids") -> Any:
    """``column IN`` the ids bound as the one parameter ``name`` (see :func:`ids_value`)."""
    if dialect == MYSQL:
        return column.in_(sa.bindparam(name, expanding=True))  # 65,535 parameters allowed
    ids = sa.bindparam(name, type_=sa.String)
    if dialect == POSTGRESQL:
        from sqlalchemy.dialects import postgresql

        return column == sa.any_(sa.cast(ids, postgresql.ARRAY(sa.String)))
    return column.in_(sa.select(sa.column("value")).select_from(sa.func.json_each(ids)))


def ids_value(dialect: str, ids: Sequence[str]) -> Any:
    """The parameter of :func:`ids_condition` for ``ids`` (run ids: [A-Za-z0-9_-], nothing to
    quote in PostgreSQL's array literal)."""
    if dialect == MYSQL:
        return list(ids)
    if dialect == POSTGRESQL:
        return "{" + ",".join(ids) + "}"
    return json.dumps(list(ids))
