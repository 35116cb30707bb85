"""The filter grammar: precedence, identifiers, quoting, and malformed filters' messages."""

from __future__ import annotations

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.store.search_filter import (
    BoolOp,
    Comparison,
    check_experiment_filter,
    check_run_filter,
    parse_run_order_by,
)


def test_and_binds_tighter_than_or() -> None:
    tree = check_run_filter("metrics.a > 1 OR params.b = 'x' AND tags.c = 'y'")
    assert isinstance(tree, BoolOp) and tree.op == "OR"
    assert isinstance(tree.operands[0], Comparison)
    assert isinstance(tree.operands[1], BoolOp) and tree.operands[1].op == "AND"


def test_parentheses_override_precedence() -> None:
    tree = check_run_filter("(metrics.a > 1 or params.b = 'x') and tags.c = 'y'")
    assert isinstance(tree, BoolOp) and tree.op == "AND"
    assert isinstance(tree.operands[0], BoolOp) and tree.operands[0].op == "OR"


@pytest.mark.parametrize(
    ("text", "kind", "key", "op", "value"),
    [
        ("metric.acc >= 0.5", "metric", "acc", ">=", 0.5),
        ("parameters.lr = '0.01'", "param", "lr", "=", "0.01"),
        ('metrics."f1 score" < 1e-3', "metric", "f1 score", "<", 0.001),
        ("tags.`user-name` LIKE 'a%'", "tag", "user-name", "LIKE", "a%"),
        ("tag.note ilike '%it''s%'", "tag", "note", "ILIKE", "%it's%"),
        ("attr.status != 'FAILED'", "attribute", "status", "!=", "FAILED"),
        ("run.run_id IN ('a', 'b')", "attribute", "run_id", "IN", ("a", "b")),
        ("attributes.run_id not in ('a')", "attribute", "run_id", "NOT IN", ("a",)),
        ("params.x IS NULL", "param", "x", "IS NULL", None),
        ("params.x is not null", "param", "x", "IS NOT NULL", None),
        ("start_time > -5", "attribute", "start_time", ">", -5.0),
        ("datasets.context = 'train'", "dataset", "context", "=", "train"),
        ("metrics.a/b:c.d <> 3", "metric", "a/b:c.d", "!=", 3.0),
    ],
)
def test_comparisons_parse(text: str, kind: str, key: str, op: str, value: object) -> None:
    tree = check_run_filter(text)
    assert tree == Comparison(kind, key, op, value, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("metrics.acc >", "at the end: expected a value"),
        ("metrics.acc ~ 1", "at character 13 ('~'): unexpected character"),
        ("tags.x = 'open", 'at character 10 ("\'"): unterminated string'),
        ("(metrics.a > 1", "expected ')' to close the '(' at character 1"),
        ("metrics.a > 1 and", "at the end: expected an identifier"),
        ("metrics.a > 1 params.b = 'x'", "at character 15 ('params.b'): expected AND, OR"),
        ("foo.bar = 1", "unknown identifier type 'foo'"),
        ("attributes.nope = 'x'", "unknown attribute 'nope'"),
        ("metrics.a LIKE 'x%'", "operator LIKE is not allowed for metric 'a'"),
        ("metrics.a > 'high'", "metric 'a' is compared with a number"),
        ("params.lr = 0.01", "param 'lr' is compared with a string in single quotes"),
        ("params.lr > '1'", "operator > is not allowed for param 'lr'"),
        ("attributes.status IN ('A')", "operator IN is not allowed for attribute status"),
        ("metrics.a IS NULL", "operator IS NULL is not allowed for metric"),
        ("params.x IS 'a'", "expected NULL after IS"),
        ("run_id IN 'a'", "expected '(' and a list of values after IN"),
        ("run_id IN ('a' 'b')", "expected ',' or ')' in the IN list"),
        ("metrics. > 1", "expected a key after the dot"),
        ("datasets.size = 'x'", "unknown dataset field 'size'"),
        ("params.a = 'x' or", "at the end: expected an identifier"),
        ("= 1", "at character 1 ('='): expected an identifier"),
    ],
)
def test_malformed_run_filters_say_where_and_why(text: str, problem: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        check_run_filter(text)
    message = str(info.value)
    assert "Invalid filter" in message
    assert problem in message, message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("metrics.a > 1", "cannot filter experiments on metric 'a'"),
        ("name > 'a'", "operator > is not allowed for attribute name"),
        ("creation_time = 'x'", "attribute creation_time is compared with a number"),
        ("experiment_id LIKE '1%'", "operator LIKE is not allowed for attribute experiment_id"),
    ],
)
def test_malformed_experiment_filters(text: str, problem: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Invalid filter") as info:
        check_experiment_filter(text)
    assert problem in str(info.value)


def test_order_by_clauses() -> None:
    clauses = parse_run_order_by(["metrics.acc DESC", "params.`a b`", "created asc"])
    assert [(c.kind, c.key, c.ascending) for c in clauses] == [
        ("metric", "acc", False),
        ("param", "a b", True),
        ("attribute", "start_time", True),
    ]


@pytest.mark.parametrize(
    ("clause", "problem"),
    [
        ("metrics.acc sideways", "expected '<identifier> [ASC|DESC]'"),
        ("attributes.nope", "unknown attribute 'nope'"),
        ("datasets.name", "cannot be ordered by datasets"),
    ],
)
def test_malformed_order_by(clause: str, problem: str) -> None:
    with pytest.raises(InvalidParameterValue, match="order_by") as info:
        parse_run_order_by([clause])
    assert problem in str(info.value)
