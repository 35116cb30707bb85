"""SQL building blocks of the registry store: filters, orderings, paging, and bulk row loading.

Search compiles the parsed filter (services/registry/search.py) into one WHERE clause over the
model/version tables; tags are EXISTS subqueries. Rows of a page are turned into protobuf
entities with a fixed number of extra queries (tags, aliases, latest versions), never one per
row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, Row

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.registry.store import STAGES

from ..search import Comparison
from .schema import (
    model_version_tags,
    model_versions,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
)


def like_clause(column: Any, op: str, pattern: str) -> ColumnElement[bool]:
    """LIKE is case-sensitive and ILIKE is not, on every backend (make_engine turns on SQLite's
    case_sensitive_like, so plain LIKE behaves as on PostgreSQL)."""
    if op == "ILIKE":
        return func.lower(column).like(pattern.lower())
    return column.like(pattern)


def compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    """``column <op> value`` for the operators of the search grammar (except IS [NOT] NULL)."""
    if op in ("LIKE", "ILIKE"):
        return like_clause(column, op, str(value))
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    operators = {
        "=": column.__eq__,
        "!=": column.__ne__,
        ">": column.__gt__,
        ">=": column.__ge__,
        "<": column.__lt__,
        "<=": column.__le__,
    }
    return operators[op](value)


#: The tag MLflow marks prompts with (prompts share the registry's tables in MLflow).
PROMPT_TAG_KEY = "mlflow.prompt.is_prompt"


def tag_clause(
    tag_table: Any, owner: Sequence[tuple[Any, Any]], cmp: Comparison
) -> ColumnElement[bool]:
    """EXISTS(tag with key and matching value); IS NULL = no such tag."""
    joins = [tag_col == owner_col for tag_col, owner_col in owner]
    present = exists().where(*joins, tag_table.c.key == cmp.key)
    if cmp.op == "IS NULL":
        return not_(present)
    if cmp.op == "IS NOT NULL":
        return present
    if cmp.key == PROMPT_TAG_KEY and cmp.op == "!=":
        # MLflow's client adds "tags.`mlflow.prompt.is_prompt` != 'true'" to every registry
        # search to leave prompts out; a model without the tag is not a prompt, so it matches
        # (as in MLflow's own store), unlike other tags, which must exist to match "!=".
        return not_(
            exists().where(
                *joins, tag_table.c.key == cmp.key, compare(tag_table.c.value, "=", cmp.value)
            )
        )
    matches = exists().where(
        *joins, tag_table.c.key == cmp.key, compare(tag_table.c.value, cmp.op, cmp.value)
    )
    return matches


def model_filter(comparisons: Iterable[Comparison]) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for cmp in comparisons:
        if cmp.kind == "tag":
            owner = [(registered_model_tags.c.model_id, registered_models.c.id)]
            clauses.append(tag_clause(registered_model_tags, owner, cmp))
        else:  # only "name" is an attribute of registered models
            clauses.append(compare(registered_models.c.name, cmp.op, cmp.value))
    return and_(true(), *clauses)


VERSION_COLUMNS = {
    "name": registered_models.c.name,
    "version_number": model_versions.c.version,
    "run_id": model_versions.c.run_id,
    "source_path": model_versions.c.source,
}


def version_filter(comparisons: Iterable[Comparison]) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for cmp in comparisons:
        if cmp.kind == "tag":
            owner = [
                (model_version_tags.c.model_id, model_versions.c.model_id),
                (model_version_tags.c.version, model_versions.c.version),
            ]
            clauses.append(tag_clause(model_version_tags, owner, cmp))
        else:
            clauses.append(compare(VERSION_COLUMNS[cmp.key], cmp.op, cmp.value))
    return and_(true(), *clauses)


# --- rows -> protobuf entities -------------------------------------------------------------

VERSION_SELECT = [
    model_versions.c.model_id,
    registered_models.c.name,
    model_versions.c.version,
    model_versions.c.creation_time,
    model_versions.c.last_updated_time,
    model_versions.c.description,
    model_versions.c.user_id,
    model_versions.c.current_stage,
    model_versions.c.source,
    model_versions.c.run_id,
    model_versions.c.run_link,
    model_versions.c.status,
    model_versions.c.status_message,
    model_versions.c.logged_model_id,
]


def version_query() -> Any:
    return select(*VERSION_SELECT).join_from(
        model_versions, registered_models, model_versions.c.model_id == registered_models.c.id
    )


def version_from_row(
    row: Sequence[Any], tags: Sequence[tuple[str, str]] = (), aliases: Sequence[str] = ()
) -> registry_pb2.ModelVersion:
    # Positional row access and no empty repeated fields: this runs once per search hit.
    (
        _,
        name,
        version,
        created,
        updated,
        description,
        user_id,
        stage,
        source,
        run_id,
        run_link,
        status,
        status_message,
        logged_model_id,
    ) = row
    entity = registry_pb2.ModelVersion(
        name=name,
        version=str(version),
        creation_timestamp=created,
        last_updated_timestamp=updated,
        user_id=user_id,
        current_stage=stage,
        description=description,
        source=source,
        run_id=run_id,
        status=status,
        status_message=status_message,
        run_link=run_link,
    )
    if logged_model_id:
        entity.model_id = logged_model_id
    if tags:
        entity.tags.extend(common_pb2.Tag(key=k, value=v) for k, v in tags)
    if aliases:
        entity.aliases.extend(aliases)
    return entity


# Hot statements are built once: building and cache-keying a statement per call costs more
# than running it on a small table.
_tag_rows = select(
    literal_column("'t'").label("kind"),
    model_version_tags.c.model_id,
    model_version_tags.c.version,
    model_version_tags.c.key.label("name"),
    model_version_tags.c.value,
).where(
    model_version_tags.c.model_id.in_(bindparam("ids", expanding=True)),
    model_version_tags.c.version.between(bindparam("low"), bindparam("high")),
)
_alias_rows = select(
    literal_column("'a'").label("kind"),
    registered_model_aliases.c.model_id,
    registered_model_aliases.c.version,
    registered_model_aliases.c.alias.label("name"),
    literal_column("''").label("value"),
).where(
    registered_model_aliases.c.model_id.in_(bindparam("ids", expanding=True)),
    registered_model_aliases.c.version.between(bindparam("low"), bindparam("high")),
)
#: Tags and aliases of the versions of models ``ids`` numbered ``low``..``high``.
VERSION_EXTRAS = union_all(_tag_rows, _alias_rows).order_by("name")

#: One version by model name and number.
VERSION_BY_NUMBER = version_query().where(
    registered_models.c.name == bindparam("name"), model_versions.c.version == bindparam("version")
)

#: The version an alias of a model points at.
VERSION_BY_ALIAS = (
    version_query()
    .join(
        registered_model_aliases,
        and_(
            registered_model_aliases.c.model_id == model_versions.c.model_id,
            registered_model_aliases.c.version == model_versions.c.version,
        ),
    )
    .where(
        registered_models.c.name == bindparam("name"),
        registered_model_aliases.c.alias == bindparam("alias"),
    )
)

#: A model's id by name.
MODEL_ID_BY_NAME = select(registered_models.c.id).where(
    registered_models.c.name == bindparam("name")
)

#: Bumps the model's version counter; the row stays locked until commit.
BUMP_VERSION = (
    update(registered_models)
    .where(registered_models.c.name == bindparam("model_name"))
    .values(last_version=registered_models.c.last_version + 1, last_updated_time=bindparam("when"))
)
#: The same, answering the model's id and new number (databases with UPDATE … RETURNING).
TAKE_NEXT_VERSION = BUMP_VERSION.returning(registered_models.c.id, registered_models.c.last_version)
#: The model's id and number, read after BUMP_VERSION in its transaction (the others).
BUMPED_VERSION = select(registered_models.c.id, registered_models.c.last_version).where(
    registered_models.c.name == bindparam("model_name")
)


def take_next_version(conn: Connection, name: str, when: int) -> Row | None:
    """Takes model ``name``'s next version number: (model id, number), None for no such model.
    The model's row stays locked until the transaction ends, so creators queue there."""
    params = {"model_name": name, "when": when}
    if conn.dialect.update_returning:
        return conn.execute(TAKE_NEXT_VERSION, params).first()
    if not conn.execute(BUMP_VERSION, params).rowcount:  # MySQL/MariaDB: no UPDATE … RETURNING
        return None
    return conn.execute(BUMPED_VERSION, params).first()


def load_versions(conn: Connection, rows: Sequence[Row]) -> list[registry_pb2.ModelVersion]:
    """Entities for version rows; their tags and aliases come back in one UNION ALL query
    (round trips dominate the cost of a small read). Rows are read by position (model_id 0,
    version 2: see VERSION_SELECT) and fetched whole: a search hands over up to 1,000 rows,
    where per-row attribute lookups and fetchone calls cost more than the SQL."""
    if not rows:
        return []
    ids = {row[0] for row in rows}
    numbers = [row[2] for row in rows]
    params = {"ids": sorted(ids), "low": min(numbers), "high": max(numbers)}
    tags: dict[tuple[int, int], list[tuple[str, str]]] = {}
    aliases: dict[tuple[int, int], list[str]] = {}
    for kind, model_id, version, name, value in conn.execute(VERSION_EXTRAS, params).all():
        if kind == "t":
            tags.setdefault((model_id, version), []).append((name, value))
        else:
            aliases.setdefault((model_id, version), []).append(name)
    no_tags: list[tuple[str, str]] = []
    no_aliases: list[str] = []
    if not tags and not aliases:
        return [version_from_row(row, no_tags, no_aliases) for row in rows]
    return [
        version_from_row(
            row,
            tags.get((row[0], row[2]), no_tags),
            aliases.get((row[0], row[2]), no_aliases),
        )
        for row in rows
    ]


def latest_version_rows(
    conn: Connection, model_ids: Iterable[int], stages: Sequence[str] = ()
) -> list[Row]:
    """Per model and stage, the row of the highest version (``stages`` empty = every stage)."""
    ids = list(model_ids)
    if not ids:
        return []
    top = (
        select(
            model_versions.c.model_id,
            model_versions.c.current_stage,
            func.max(model_versions.c.version).label("version"),
        )
        .where(model_versions.c.model_id.in_(ids))
        .group_by(model_versions.c.model_id, model_versions.c.current_stage)
    )
    if stages:
        top = top.where(model_versions.c.current_stage.in_(list(stages)))
    sub = top.subquery()
    query = version_query().join(
        sub,
        and_(
            sub.c.model_id == model_versions.c.model_id, sub.c.version == model_versions.c.version
        ),
    )
    rows = list(conn.execute(query))
    order = {stage: i for i, stage in enumerate(STAGES)}
    rows.sort(key=lambda r: (r.model_id, order.get(r.current_stage, len(order))))
    return rows


def load_models(conn: Connection, rows: Sequence[Row]) -> list[registry_pb2.RegisteredModel]:
    """Entities for registered-model rows, with tags, aliases and latest versions in bulk."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    tags: dict[int, list[common_pb2.Tag]] = defaultdict(list)
    for t in conn.execute(
        select(registered_model_tags)
        .where(registered_model_tags.c.model_id.in_(ids))
        .order_by(registered_model_tags.c.key)
    ):
        tags[t.model_id].append(common_pb2.Tag(key=t.key, value=t.value))
    aliases: dict[int, list[registry_pb2.RegisteredModelAlias]] = defaultdict(list)
    for a in conn.execute(
        select(registered_model_aliases)
        .where(registered_model_aliases.c.model_id.in_(ids))
        .order_by(registered_model_aliases.c.alias)
    ):
        aliases[a.model_id].append(
            registry_pb2.RegisteredModelAlias(alias=a.alias, version=str(a.version))
        )
    latest: dict[int, list[registry_pb2.ModelVersion]] = defaultdict(list)
    latest_rows = latest_version_rows(conn, ids)
    for row, entity in zip(latest_rows, load_versions(conn, latest_rows), strict=True):
        latest[row.model_id].append(entity)
    return [
        registry_pb2.RegisteredModel(
            name=row.name,
            creation_timestamp=row.creation_time,
            last_updated_timestamp=row.last_updated_time,
            description=row.description,
            latest_versions=latest[row.id],
            tags=tags[row.id],
            aliases=aliases[row.id],
        )
        for row in rows
    ]
