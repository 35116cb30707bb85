"""PostgreSQL fast path of the registry store: the hot single-row reads and version creation as
one prepared statement each, on autocommit psycopg connections kept apart from SQLAlchemy.

Why: through SQLAlchemy a get-by-alias cost ~0.37 ms of CPU and four round trips (BEGIN, the
version row, its tags and aliases, ROLLBACK); one prepared statement on an autocommit connection
costs ~0.03 ms of CPU and one round trip. Consistency is unchanged: PostgreSQL's READ COMMITTED
gave each statement of the old transaction its own snapshot anyway, while one statement now sees
the version, its tags and its aliases in a single snapshot. A statement run in autocommit is its
own transaction, so a creation either happens whole or not at all.

The statements run on the pooled autocommit connections of pg_connections.py (loaded, with
psycopg, only by a store on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlgrid.api.registry.v1 import registry_pb2

from . import queries

# The version's columns, then its tag keys, tag values and aliases as arrays, each ordered the way
# load_versions orders them (tags by key, aliases by name).
_VERSION_COLUMNS = """
    mv.version, mv.creation_time, mv.last_updated_time, mv.description, mv.user_id,
    mv.current_stage, mv.source, mv.run_id, mv.run_link, mv.status, mv.status_message,
    mv.logged_model_id,
    ARRAY(SELECT t.key FROM model_version_tags t
          WHERE t.model_id = mv.model_id AND t.version = mv.version ORDER BY t.key),
    ARRAY(SELECT t.value FROM model_version_tags t
          WHERE t.model_id = mv.model_id AND t.version = mv.version ORDER BY t.key),
    ARRAY(SELECT a.alias FROM registered_model_aliases a
          WHERE a.model_id = mv.model_id AND a.version = mv.version ORDER BY a.alias)
"""

VERSION_BY_ALIAS = f"""
SELECT {_VERSION_COLUMNS}
FROM registered_models m
JOIN registered_model_aliases pointer ON pointer.model_id = m.id
JOIN model_versions mv ON mv.model_id = pointer.model_id AND mv.version = pointer.version
WHERE m.name = %(name)s AND pointer.alias = %(alias)s
"""

VERSION_BY_NUMBER = f"""
SELECT {_VERSION_COLUMNS}
FROM registered_models m
JOIN model_versions mv ON mv.model_id = m.id
WHERE m.name = %(name)s AND mv.version = %(version)s
"""

MODEL_EXISTS = "SELECT 1 FROM registered_models WHERE name = %(name)s"

# Takes the model's next number and inserts the version and its tags in one statement: the UPDATE
# locks the model row until the statement's commit, so racing creators queue there and numbers
# stay unique; any failure rolls the whole statement back, counter included, so they stay
# gap-free. No row back means no such model.
CREATE_VERSION = """
WITH bumped AS (
    UPDATE registered_models
    SET last_version = last_version + 1, last_updated_time = %(last_updated_time)s
    WHERE name = %(name)s
    RETURNING id, last_version
), created AS (
    INSERT INTO model_versions (
        model_id, version, creation_time, last_updated_time, description, user_id,
        current_stage, source, storage_location, run_id, run_link, status, status_message,
        logged_model_id)
    SELECT id, last_version, %(creation_time)s, %(last_updated_time)s, %(description)s,
        %(user_id)s, %(current_stage)s, %(source)s, %(storage_location)s, %(run_id)s,
        %(run_link)s, %(status)s, %(status_message)s, %(logged_model_id)s
    FROM bumped
    RETURNING model_id, version
), tagged AS (
    INSERT INTO model_version_tags (model_id, version, key, value)
    SELECT created.model_id, created.version, tag.key, tag.value
    FROM created, unnest(%(tag_keys)s::text[], %(tag_values)s::text[]) AS tag(key, value)
)
SELECT version FROM created
"""


def version_from_row(name: str, row: Sequence[Any]) -> registry_pb2.ModelVersion:
    """The entity for a row of the statements above (``name`` is the one asked for): the
    version's columns as queries.version_from_row takes them, then tag keys, values, aliases."""
    *columns, tag_keys, tag_values, aliases = row
    tags = list(zip(tag_keys, tag_values, strict=True)) if tag_keys else ()
    return queries.version_from_row((None, name, *columns), tags, aliases or ())
