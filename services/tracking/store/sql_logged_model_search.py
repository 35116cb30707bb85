"""search_logged_models in the SQL tracking store: one query for the page of ids, then
load_models for their details.

A metric comparison or ordering uses the model's latest value of the metric (greatest step,
then timestamp, then value; NaN counts as no value), restricted to the request's datasets and
the clause's own dataset: a correlated scalar subquery over ``logged_model_metrics``'s primary
key, so filters of any shape (AND, OR, parentheses) stay one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.store.filter_parser import BoolOp, Comparison, FilterNode
from mlgrid.store.logged_model_filter import (
    LOGGED_MODEL_STATUS_NAMES,
    LoggedModelOrder,
    check_logged_model_filter,
    logged_model_attribute,
)
from mlgrid.store.paging import decode_page_token, encode_page_token

from . import logged_model_schema as lm
from . import schema as t
from .sql_base import SqlStoreBase
from .sql_filters import _OPS, _number
from .sql_logged_models import load_models

_M = lm.logged_models.c
_MM = lm.logged_model_metrics.c
_ATTRIBUTE_COLUMNS = {
    "name": _M.name,
    "model_id": _M.model_id,
    "model_type": _M.model_type,
    "source_run_id": _M.source_run_id,
    "status": _M.status,
    "creation_timestamp": _M.creation_timestamp_ms,
    "last_updated_timestamp": _M.last_updated_timestamp_ms,
}
PAGE_KIND = "logged_models"

Datasets = Sequence[tuple[str, str]]


def _dataset_condition(datasets: Datasets) -> ColumnElement[bool] | None:
    """Points on any of ``datasets`` ((name, digest) pairs, "" digest = any)."""
    if not datasets:
        return None
    parts = []
    for name, digest in datasets:
        condition = _MM.dataset_name == name
        if digest:
            condition = sa.and_(condition, _MM.dataset_digest == digest)
        parts.append(condition)
    return sa.or_(*parts)


def latest_metric(key: str, conditions: Sequence[ColumnElement[bool]]) -> Any:
    """The model's latest value of metric ``key`` among points meeting ``conditions``; NULL
    when it has none (or the latest is NaN)."""
    return (
        sa.select(sa.case((_MM.is_nan.is_(True), None), else_=_MM.value))
        .where(_MM.model_id == _M.model_id, _MM.key == key, *conditions)
        .order_by(_MM.step.desc(), _MM.timestamp.desc(), _MM.value.desc())
        .limit(1)
        .scalar_subquery()
    )


def _key_value(table: sa.Table, comp: Comparison) -> ColumnElement[bool]:
    base = sa.select(sa.literal(1)).where(table.c.model_id == _M.model_id, table.c.key == comp.key)
    if comp.op == "IS NULL":
        return ~base.exists()
    if comp.op == "IS NOT NULL":
        return base.exists()
    return base.where(_OPS[comp.op](table.c.value, comp.value)).exists()


def _comparison(comp: Comparison, datasets: Datasets) -> ColumnElement[bool]:
    if comp.kind == "metric":
        scope = _dataset_condition(datasets)
        latest = latest_metric(comp.key, [] if scope is None else [scope])
        return _OPS[comp.op](latest, comp.value)  # type: ignore[no-any-return]
    if comp.kind == "param":
        return _key_value(lm.logged_model_params, comp)
    if comp.kind == "tag":
        return _key_value(lm.logged_model_tags, comp)
    name = logged_model_attribute(comp.key)
    assert name is not None  # checked by check_logged_model_filter
    value: Any = comp.value
    if name == "status":
        if isinstance(value, tuple):
            value = tuple(LOGGED_MODEL_STATUS_NAMES[v.upper()] for v in value)
        else:
            value = LOGGED_MODEL_STATUS_NAMES[str(value).upper()]
    return _OPS[comp.op](_ATTRIBUTE_COLUMNS[name], _number(value))  # type: ignore[no-any-return]


def _combine(node: FilterNode, datasets: Datasets) -> ColumnElement[bool]:
    if isinstance(node, Comparison):
        return _comparison(node, datasets)
    assert isinstance(node, BoolOp)
    parts = [_combine(operand, datasets) for operand in node.operands]
    return sa.and_(*parts) if node.op == "AND" else sa.or_(*parts)


def _has_metric_comparison(node: FilterNode | None) -> bool:
    if node is None:
        return False
    if isinstance(node, Comparison):
        return node.kind == "metric"
    return any(_has_metric_comparison(operand) for operand in node.operands)


def _order_clauses(order_by: Sequence[LoggedModelOrder], datasets: Datasets) -> list[Any]:
    clauses: list[Any] = []
    keys = set()
    for order in order_by:
        if order.kind == "attribute":
            column: Any = _ATTRIBUTE_COLUMNS[order.key]
            keys.add(order.key)
        else:
            scope = _dataset_condition(datasets)
            conditions = [] if scope is None else [scope]
            if order.dataset_name:
                conditions.append(_MM.dataset_name == order.dataset_name)
            if order.dataset_digest:
                conditions.append(_MM.dataset_digest == order.dataset_digest)
            column = latest_metric(order.key, conditions)
        # Missing values last in either direction (NULLS LAST is not portable).
        clauses.append(sa.case((column.is_(None), 1), else_=0))
        clauses.append(column.asc() if order.ascending else column.desc())
    if "creation_timestamp" not in keys:
        clauses.append(_M.creation_timestamp_ms.desc())
    if "model_id" not in keys:
        clauses.append(_M.model_id.asc())
    return clauses


class LoggedModelSearchMixin(SqlStoreBase):
    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        datasets: Datasets,
        max_results: int,
        order_by: Sequence[LoggedModelOrder],
        page_token: str,
    ) -> tuple[list[tracking_pb2.LoggedModel], str]:
        offset = decode_page_token(page_token, PAGE_KIND)
        tree = check_logged_model_filter(filter_string)
        numbers = [int(e) for e in experiment_ids if e.isdigit() and int(e) < 2**31]
        conditions: list[ColumnElement[bool]] = [
            _M.experiment_id.in_(numbers),
            _M.lifecycle_stage == t.ACTIVE,
        ]
        if tree is not None:
            conditions.append(_combine(tree, datasets))
        scope = _dataset_condition(datasets)
        if scope is not None and not _has_metric_comparison(tree):
            conditions.append(
                sa.select(sa.literal(1)).where(_MM.model_id == _M.model_id, scope).exists()
            )
        statement = (
            sa.select(_M.model_id)
            .where(*conditions)
            .order_by(*_order_clauses(order_by, datasets))
            .offset(offset)
            .limit(max_results + 1)
        )
        with self._read() as conn:
            ids = list(conn.execute(statement).scalars())
            token = ""
            if len(ids) > max_results:
                ids = ids[:max_results]
                token = encode_page_token(offset + max_results, PAGE_KIND)
            return load_models(conn, ids), token
