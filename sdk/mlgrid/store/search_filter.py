"""MLflow's search filter grammar, plus ``OR`` and parentheses, parsed into a small tree.

Grammar (``AND`` binds tighter than ``OR``; keywords are case-insensitive)::

    filter     := or_expr EOF
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := primary ("AND" primary)*
    primary    := "(" or_expr ")" | comparison
    comparison := identifier op value
                | identifier "IS" ["NOT"] "NULL"
                | identifier ["NOT"] "IN" "(" value ("," value)* ")"
    identifier := type "." key | attribute_name
    key        := word | "quoted" | `quoted`
    op         := "=" | "!=" | "<>" | ">" | ">=" | "<" | "<=" | "LIKE" | "ILIKE"

Every store implementation (the SQL store, plugins) receives the filter string and parses it here,
so they all accept and reject the same filters with the same messages. :func:`check_run_filter`
and :func:`check_experiment_filter` add which identifiers and operators each search allows.
Errors are :class:`InvalidParameterValue` naming the character position and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.request_limits import check_filter_size, check_order_by_count, shown

from .filter_parser import (
    BoolOp,
    Comparison,
    FilterNode,
    Parser,
    Token,
    filter_error,
    parse_filter,
)

__all__ = [
    "RUN_ATTRIBUTES",
    "BoolOp",
    "Comparison",
    "FilterNode",
    "OrderBy",
    "RunAttribute",
    "check_experiment_filter",
    "check_run_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_run_order_by",
]


@dataclass(frozen=True)
class RunAttribute:
    """A run attribute a filter or order_by may name."""

    #: The RunInfo field it reads (the SQL store finds the column from it, services'
    #: tracking/store/rows.py; the in-memory store reads the field).
    field: str
    #: Compared with numbers (else with strings in single quotes).
    numeric: bool = False


#: Every searchable run attribute, declared once: adding one here (a RunInfo field the SQL
#: store already maps to a column) makes it searchable and orderable everywhere.
#: ``created`` is MLflow's alias of start_time.
RUN_ATTRIBUTES: dict[str, RunAttribute] = {
    "run_id": RunAttribute("run_id"),
    "run_name": RunAttribute("run_name"),
    "user_id": RunAttribute("user_id"),
    "status": RunAttribute("status"),
    "artifact_uri": RunAttribute("artifact_uri"),
    "lifecycle_stage": RunAttribute("lifecycle_stage"),
    "start_time": RunAttribute("start_time", numeric=True),
    "end_time": RunAttribute("end_time", numeric=True),
    "created": RunAttribute("start_time", numeric=True),
}
RUN_STRING_ATTRIBUTES = frozenset(k for k, a in RUN_ATTRIBUTES.items() if not a.numeric)
RUN_NUMERIC_ATTRIBUTES = frozenset(k for k, a in RUN_ATTRIBUTES.items() if a.numeric)
DATASET_FIELDS = frozenset({"name", "digest", "context"})
EXPERIMENT_STRING_ATTRIBUTES = frozenset({"name"})
EXPERIMENT_NUMERIC_ATTRIBUTES = frozenset({"creation_time", "last_update_time"})

_NUMERIC_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
_NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
_SET_OPS = frozenset({"IN", "NOT IN"})


@dataclass(frozen=True)
class OrderBy:
    """One ``order_by`` clause."""

    kind: str
    key: str
    ascending: bool


def _comparisons(node: FilterNode | None) -> list[Comparison]:
    if node is None:
        return []
    if isinstance(node, Comparison):
        return [node]
    return [c for operand in node.operands for c in _comparisons(operand)]


def _check(text: str, comp: Comparison, ops: frozenset[str], what: str, numeric: bool) -> None:
    token = Token("word", comp.key, comp.position)
    if comp.op not in ops:
        allowed = ", ".join(sorted(ops))
        raise filter_error(
            text, token, f"operator {comp.op} is not allowed for {what}; use {allowed}"
        )
    if comp.op in _NULL_OPS or comp.op in _SET_OPS:
        return
    if numeric and not isinstance(comp.value, float):
        raise filter_error(
            text, token, f"{what} is compared with a number, got {shown(str(comp.value), 80)}"
        )
    if not numeric and not isinstance(comp.value, str):
        raise filter_error(
            text,
            token,
            f"{what} is compared with a string in single quotes, got {shown(str(comp.value), 80)}",
        )


def check_run_filter(text: str) -> FilterNode | None:
    """Parses a runs filter and checks identifiers and operators per type (REFERENCE.md)."""
    tree = parse_filter(text)
    for comp in _comparisons(tree):
        if comp.kind == "metric":
            _check(text, comp, _NUMERIC_OPS, f"metric {shown(comp.key, 80)}", True)
        elif comp.kind in ("param", "tag"):
            _check(text, comp, _STRING_OPS | _NULL_OPS, f"{comp.kind} {shown(comp.key, 80)}", False)
        elif comp.kind == "dataset":
            if comp.key not in DATASET_FIELDS:
                raise filter_error(
                    text,
                    Token("word", comp.key, comp.position),
                    f"unknown dataset field {shown(comp.key, 80)}; expected name, digest or context",
                )
            _check(text, comp, _STRING_OPS | _SET_OPS, f"dataset {comp.key}", False)
        elif comp.key in RUN_NUMERIC_ATTRIBUTES:
            _check(text, comp, _NUMERIC_OPS, f"attribute {comp.key}", True)
        elif comp.key in RUN_STRING_ATTRIBUTES:
            ops = _STRING_OPS | _SET_OPS if comp.key == "run_id" else _STRING_OPS
            _check(text, comp, ops, f"attribute {comp.key}", False)
        else:
            allowed = ", ".join(sorted(RUN_STRING_ATTRIBUTES | RUN_NUMERIC_ATTRIBUTES))
            raise filter_error(
                text,
                Token("word", comp.key, comp.position),
                f"unknown attribute {shown(comp.key, 80)}; expected one of {allowed} (or prefix the key "
                "with metrics., params. or tags.)",
            )
    return tree


def check_experiment_filter(text: str) -> FilterNode | None:
    """Parses an experiments filter: name, experiment_id, creation_time, last_update_time, tags."""
    tree = parse_filter(text)
    for comp in _comparisons(tree):
        if comp.kind == "tag":
            _check(text, comp, _STRING_OPS | _NULL_OPS, f"tag {shown(comp.key, 80)}", False)
        elif comp.kind == "attribute" and comp.key in EXPERIMENT_NUMERIC_ATTRIBUTES:
            _check(text, comp, _NUMERIC_OPS, f"attribute {comp.key}", True)
        elif comp.kind == "attribute" and comp.key in EXPERIMENT_STRING_ATTRIBUTES:
            _check(text, comp, _STRING_OPS, f"attribute {comp.key}", False)
        elif comp.kind == "attribute" and comp.key == "experiment_id":
            _check(text, comp, frozenset({"=", "!="}) | _SET_OPS, "attribute experiment_id", False)
        else:
            raise filter_error(
                text,
                Token("word", comp.key, comp.position),
                f"cannot filter experiments on {comp.kind} {shown(comp.key, 80)}; expected name, "
                "experiment_id, creation_time, last_update_time or tags.<key>",
            )
    return tree


def _parse_order_clause(clause: str) -> tuple[str, str, bool]:
    check_filter_size(clause, "order_by clause")
    parser = Parser(clause)
    kind, key, _ = parser.identifier()
    ascending = True
    if parser.current.kind == "word" and parser.current.text.upper() in ("ASC", "DESC"):
        ascending = parser.advance().text.upper() == "ASC"
    if parser.current.kind != "eof":
        raise InvalidParameterValue(
            f"Invalid order_by clause {shown(clause)} at character {parser.current.position}: "
            "expected '<identifier> [ASC|DESC]'"
        )
    return kind, key, ascending


def parse_run_order_by(clauses: list[str] | tuple[str, ...]) -> list[OrderBy]:
    """Runs order_by clauses (metrics, params, tags, attributes)."""
    check_order_by_count(clauses)
    result = []
    for clause in clauses:
        kind, key, ascending = _parse_order_clause(clause)
        if kind == "attribute" and key not in RUN_STRING_ATTRIBUTES | RUN_NUMERIC_ATTRIBUTES:
            raise InvalidParameterValue(
                f"Invalid order_by clause {shown(clause)}: unknown attribute {shown(key, 80)}; expected one of "
                f"{', '.join(sorted(RUN_STRING_ATTRIBUTES | RUN_NUMERIC_ATTRIBUTES))}"
            )
        if kind == "dataset":
            raise InvalidParameterValue(
                f"Invalid order_by clause {shown(clause)}: runs cannot be ordered by datasets"
            )
        if kind == "attribute":
            key = RUN_ATTRIBUTES[key].field  # order by the field an alias (created) names
        result.append(OrderBy(kind, key, ascending))
    return result


def parse_experiment_order_by(clauses: list[str] | tuple[str, ...]) -> list[OrderBy]:
    """Experiments order_by clauses (name, experiment_id, creation_time, last_update_time)."""
    check_order_by_count(clauses)
    allowed = {"name", "experiment_id", "creation_time", "last_update_time"}
    result = []
    for clause in clauses:
        kind, key, ascending = _parse_order_clause(clause)
        if kind != "attribute" or key not in allowed:
            raise InvalidParameterValue(
                f"Invalid order_by clause {shown(clause)}: experiments are ordered by "
                f"{', '.join(sorted(allowed))}"
            )
        result.append(OrderBy(kind, key, ascending))
    return result
