"""Compiles parsed search filters (mlgrid.store.search_filter) into SQLAlchemy conditions.

Each comparison on metrics / params / tags / datasets becomes a correlated EXISTS over an indexed
table (primary key (run_uuid, key)), so a filter of any shape (AND, OR, parentheses) stays one
SQL query. Metric comparisons read the latest value from ``latest_metrics``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from mlgrid.api.common.v1 import common_pb2
from mlgrid.store.search_filter import RUN_ATTRIBUTES, BoolOp, Comparison, FilterNode

from . import schema as t
from .rows import RUN_INFO_FIELDS

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "LIKE": lambda column, value: column.like(value),
    "ILIKE": lambda column, value: column.ilike(value),
    "IN": lambda column, values: column.in_(list(values)),
    "NOT IN": lambda column, values: column.not_in(list(values)),
}

#: The column of each RunInfo field (rows.py declares them; the id is not among its fields).
_RUN_INFO_COLUMNS = {field.name: field.column for field in RUN_INFO_FIELDS}
_RUN_INFO_COLUMNS["run_id"] = t.runs.c.run_uuid
#: The column each searchable run attribute (the SDK's grammar, RUN_ATTRIBUTES) reads: a new
#: attribute needs no line here. A KeyError at import names one whose field has no column.
_RUN_ATTRIBUTE_COLUMNS = {
    name: _RUN_INFO_COLUMNS[attribute.field] for name, attribute in RUN_ATTRIBUTES.items()
}

#: Input tag holding a dataset's role (train, eval, …), searchable as ``datasets.context``.
DATASET_CONTEXT_TAG = "mlflow.data.context"


def _number(value: Any) -> Any:
    # Integral values compare as integers so BIGINT indexes stay usable.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def lifecycle_condition(column: Any, view_type: int) -> ColumnElement[bool]:
    if view_type == common_pb2.VIEW_TYPE_ALL:
        return sa.true()
    if view_type == common_pb2.VIEW_TYPE_DELETED_ONLY:
        return column == t.DELETED
    return column == t.ACTIVE


def _key_value_exists(table: sa.Table, comp: Comparison) -> ColumnElement[bool]:
    base = sa.select(sa.literal(1)).where(
        table.c.run_uuid == t.runs.c.run_uuid, table.c.key == comp.key
    )
    if comp.op == "IS NULL":
        return ~base.exists()
    if comp.op == "IS NOT NULL":
        return base.exists()
    return base.where(_OPS[comp.op](table.c.value, comp.value)).exists()


def joined_comparison(alias: Any, comp: Comparison) -> ColumnElement[bool]:
    """``comp`` as a condition on a joined metrics/params/tags row of the run (``alias``)."""
    condition = _OPS[comp.op](alias.c.value, comp.value)
    if comp.kind == "metric":
        return sa.and_(alias.c.is_nan.is_(False), condition)
    return condition  # type: ignore[no-any-return]


def _metric_exists(comp: Comparison) -> ColumnElement[bool]:
    lm = t.latest_metrics.c
    return (
        sa.select(sa.literal(1))
        .where(
            lm.run_uuid == t.runs.c.run_uuid,
            lm.key == comp.key,
            lm.is_nan.is_(False),
            _OPS[comp.op](lm.value, comp.value),
        )
        .exists()
    )


def _dataset_exists(comp: Comparison) -> ColumnElement[bool]:
    ri = t.run_inputs.c
    if comp.key == "context":
        it = t.run_input_tags.c
        return (
            sa.select(sa.literal(1))
            .where(
                it.run_uuid == t.runs.c.run_uuid,
                it.key == DATASET_CONTEXT_TAG,
                _OPS[comp.op](it.value, comp.value),
            )
            .exists()
        )
    column = t.datasets.c.name if comp.key == "name" else t.datasets.c.digest
    return (
        sa.select(sa.literal(1))
        .select_from(t.run_inputs.join(t.datasets, t.datasets.c.dataset_uuid == ri.dataset_uuid))
        .where(ri.run_uuid == t.runs.c.run_uuid, _OPS[comp.op](column, comp.value))
        .exists()
    )


def _run_comparison(comp: Comparison) -> ColumnElement[bool]:
    if comp.kind == "metric":
        return _metric_exists(comp)
    if comp.kind == "param":
        return _key_value_exists(t.params, comp)
    if comp.kind == "tag":
        return _key_value_exists(t.tags, comp)
    if comp.kind == "dataset":
        return _dataset_exists(comp)
    column = _RUN_ATTRIBUTE_COLUMNS[comp.key]
    return _OPS[comp.op](column, _number(comp.value))  # type: ignore[no-any-return]


def _combine(
    node: FilterNode, leaf: Callable[[Comparison], ColumnElement[bool]]
) -> ColumnElement[bool]:
    if isinstance(node, Comparison):
        return leaf(node)
    assert isinstance(node, BoolOp)
    parts = [_combine(operand, leaf) for operand in node.operands]
    return sa.and_(*parts) if node.op == "AND" else sa.or_(*parts)


def compile_run_filter(tree: FilterNode) -> ColumnElement[bool]:
    """The WHERE condition (over ``runs``) of a checked runs filter."""
    return _combine(tree, _run_comparison)


def _experiment_comparison(comp: Comparison) -> ColumnElement[bool]:
    e = t.experiments.c
    if comp.kind == "tag":
        et = t.experiment_tags.c
        base = sa.select(sa.literal(1)).where(
            et.experiment_id == e.experiment_id, et.key == comp.key
        )
        if comp.op == "IS NULL":
            return ~base.exists()
        if comp.op == "IS NOT NULL":
            return base.exists()
        return base.where(_OPS[comp.op](et.value, comp.value)).exists()
    if comp.key == "experiment_id":
        # Ids are integers inside; a non-numeric id matches nothing.
        values = comp.value if isinstance(comp.value, tuple) else (comp.value,)
        numbers = [int(v) for v in values if isinstance(v, str) and v.isdigit()]
        if comp.op in ("=", "IN"):
            return e.experiment_id.in_(numbers)
        return e.experiment_id.not_in(numbers)
    column = {
        "name": e.name,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
    }[comp.key]
    return _OPS[comp.op](column, _number(comp.value))  # type: ignore[no-any-return]


def compile_experiment_filter(tree: FilterNode) -> ColumnElement[bool]:
    """The WHERE condition (over ``experiments``) of a checked experiments filter."""
    return _combine(tree, _experiment_comparison)


def run_attribute_column(name: str) -> Any:
    return _RUN_ATTRIBUTE_COLUMNS[name]
