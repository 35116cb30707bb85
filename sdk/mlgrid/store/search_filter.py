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

import re
from dataclasses import dataclass
from functools import lru_cache

from mlgrid.exceptions import InvalidParameterValue

__all__ = [
    "BoolOp",
    "Comparison",
    "FilterNode",
    "OrderBy",
    "check_experiment_filter",
    "check_run_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_run_order_by",
]

#: Identifier prefixes and the entity kind each names.
TYPE_ALIASES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}

#: Run attributes compared as strings / as numbers. ``created`` is MLflow's alias of start_time.
RUN_STRING_ATTRIBUTES = frozenset(
    {"run_id", "run_name", "user_id", "status", "artifact_uri", "lifecycle_stage"}
)
RUN_NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time", "created"})
DATASET_FIELDS = frozenset({"name", "digest", "context"})
EXPERIMENT_STRING_ATTRIBUTES = frozenset({"name"})
EXPERIMENT_NUMERIC_ATTRIBUTES = frozenset({"creation_time", "last_update_time"})

_NUMERIC_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
_NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
_SET_OPS = frozenset({"IN", "NOT IN"})


@dataclass(frozen=True)
class Comparison:
    """``<kind>.<key> <op> <value>``; ``value`` is a float, a str, a tuple of str, or None."""

    kind: str
    key: str
    op: str
    value: float | str | tuple[str, ...] | None
    position: int


@dataclass(frozen=True)
class BoolOp:
    """``AND`` / ``OR`` of two or more operands."""

    op: str
    operands: tuple[FilterNode, ...]


FilterNode = Comparison | BoolOp


@dataclass(frozen=True)
class OrderBy:
    """One ``order_by`` clause."""

    kind: str
    key: str
    ascending: bool


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<op>!=|<>|>=|<=|=|>|<)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<word>[A-Za-z_][\w:/-]*(?:\.[\w:/-]+)*)
  | (?P<dot>\.)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"})


@dataclass(frozen=True)
class _Token:
    kind: str  # lparen rparen comma op number string backtick word keyword dot eof
    text: str
    position: int  # 1-based character position

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "eof" else f"{self.text!r}"


def _error(text: str, token: _Token, why: str) -> InvalidParameterValue:
    shown = text if len(text) <= 200 else text[:200] + "..."
    where = (
        "at the end" if token.kind == "eof" else f"at character {token.position} ({token.text!r})"
    )
    return InvalidParameterValue(f"Invalid filter {shown!r} {where}: {why}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            bad = _Token("bad", text[pos], pos + 1)
            if text[pos] in "'\"":
                raise _error(text, bad, "unterminated string (missing closing quote)")
            raise _error(text, bad, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind != "ws":
            if kind == "word" and value.upper() in _KEYWORDS:
                tokens.append(_Token("keyword", value.upper(), pos + 1))
            else:
                tokens.append(_Token(kind, value, pos + 1))
        pos = match.end()
    tokens.append(_Token("eof", "", len(text) + 1))
    return tokens


def _unquote(token: _Token) -> str:
    quote = token.text[0]
    inner = token.text[1:-1]
    return inner if quote == "`" else inner.replace(quote * 2, quote)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.text in words

    def fail(self, why: str, token: _Token | None = None) -> InvalidParameterValue:
        return _error(self.text, token or self.current, why)

    def parse(self) -> FilterNode:
        node = self.or_expr()
        if self.current.kind != "eof":
            raise self.fail("expected AND, OR or the end of the filter")
        return node

    def or_expr(self) -> FilterNode:
        operands = [self.and_expr()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("OR", tuple(operands))

    def and_expr(self) -> FilterNode:
        operands = [self.primary()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.primary())
        return operands[0] if len(operands) == 1 else BoolOp("AND", tuple(operands))

    def primary(self) -> FilterNode:
        if self.current.kind == "lparen":
            opening = self.advance()
            node = self.or_expr()
            if self.current.kind != "rparen":
                raise self.fail(f"expected ')' to close the '(' at character {opening.position}")
            self.advance()
            return node
        return self.comparison()

    def identifier(self) -> tuple[str, str, int]:
        token = self.current
        if token.kind != "word":
            raise self.fail(
                "expected an identifier such as metrics.<key>, params.<key>, tags.<key> or "
                "attributes.<name>"
            )
        self.advance()
        head, dot, rest = token.text.partition(".")
        if not dot:
            if self.current.kind == "dot":
                # type."quoted key" / type.`quoted key`
                self.advance()
                key_token = self.current
                if key_token.kind not in ("string", "backtick") or key_token.text[0] == "'":
                    raise self.fail(
                        'expected a key after the dot, quoted with "..." or `...` when it has '
                        "special characters"
                    )
                self.advance()
                return self._kind(head, token), _unquote(key_token), token.position
            return "attribute", head, token.position
        if not rest:
            raise self.fail("expected a key after the dot", token)
        return self._kind(head, token), rest, token.position

    def _kind(self, head: str, token: _Token) -> str:
        kind = TYPE_ALIASES.get(head.lower())
        if kind is None:
            raise self.fail(
                f"unknown identifier type {head!r}; expected one of metrics, params, tags, "
                "attributes, datasets",
                token,
            )
        return kind

    def value(self) -> float | str:
        token = self.current
        if token.kind == "number":
            self.advance()
            return float(token.text)
        if token.kind == "string":
            self.advance()
            return _unquote(token)
        raise self.fail("expected a value (a number, or a string in single quotes)")

    def comparison(self) -> Comparison:
        kind, key, position = self.identifier()
        shown = f"{kind}s.{key}" if kind != "attribute" else f"attributes.{key}"
        if self.at_keyword("IS"):
            self.advance()
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            if not self.at_keyword("NULL"):
                raise self.fail("expected NULL after IS / IS NOT")
            self.advance()
            return Comparison(kind, key, "IS NOT NULL" if negated else "IS NULL", None, position)
        if self.at_keyword("NOT", "IN"):
            op = "NOT IN" if self.advance().text == "NOT" else "IN"
            if op == "NOT IN":
                if not self.at_keyword("IN"):
                    raise self.fail("expected IN after NOT")
                self.advance()
            if self.current.kind != "lparen":
                raise self.fail(f"expected '(' and a list of values after {op}")
            self.advance()
            values: list[str] = []
            while True:
                token = self.current
                if token.kind != "string":
                    raise self.fail(f"expected a quoted string in the {op} list")
                values.append(_unquote(self.advance()))
                if self.current.kind == "comma":
                    self.advance()
                    continue
                if self.current.kind == "rparen":
                    self.advance()
                    break
                raise self.fail(f"expected ',' or ')' in the {op} list")
            return Comparison(kind, key, op, tuple(values), position)
        token = self.current
        if token.kind == "op":
            op = "!=" if token.text == "<>" else token.text
        elif self.at_keyword("LIKE", "ILIKE"):
            op = token.text
        else:
            raise self.fail(
                f"expected a comparison operator (=, !=, >, >=, <, <=, LIKE, ILIKE, IN, IS) "
                f"after {shown}"
            )
        self.advance()
        return Comparison(kind, key, op, self.value(), position)


@lru_cache(maxsize=512)
def parse_filter(text: str) -> FilterNode | None:
    """The tree of ``text``; None for an empty filter. Raises InvalidParameterValue."""
    if not text or not text.strip():
        return None
    return _Parser(text).parse()


def _comparisons(node: FilterNode | None) -> list[Comparison]:
    if node is None:
        return []
    if isinstance(node, Comparison):
        return [node]
    return [c for operand in node.operands for c in _comparisons(operand)]


def _check(text: str, comp: Comparison, ops: frozenset[str], what: str, numeric: bool) -> None:
    token = _Token("word", comp.key, comp.position)
    if comp.op not in ops:
        allowed = ", ".join(sorted(ops))
        raise _error(text, token, f"operator {comp.op} is not allowed for {what}; use {allowed}")
    if comp.op in _NULL_OPS or comp.op in _SET_OPS:
        return
    if numeric and not isinstance(comp.value, float):
        raise _error(text, token, f"{what} is compared with a number, got {comp.value!r}")
    if not numeric and not isinstance(comp.value, str):
        raise _error(
            text, token, f"{what} is compared with a string in single quotes, got {comp.value!r}"
        )


def check_run_filter(text: str) -> FilterNode | None:
    """Parses a runs filter and checks identifiers and operators per type (REFERENCE.md)."""
    tree = parse_filter(text)
    for comp in _comparisons(tree):
        if comp.kind == "metric":
            _check(text, comp, _NUMERIC_OPS, f"metric {comp.key!r}", True)
        elif comp.kind in ("param", "tag"):
            _check(text, comp, _STRING_OPS | _NULL_OPS, f"{comp.kind} {comp.key!r}", False)
        elif comp.kind == "dataset":
            if comp.key not in DATASET_FIELDS:
                raise _error(
                    text,
                    _Token("word", comp.key, comp.position),
                    f"unknown dataset field {comp.key!r}; expected name, digest or context",
                )
            _check(text, comp, _STRING_OPS | _SET_OPS, f"dataset {comp.key}", False)
        elif comp.key in RUN_NUMERIC_ATTRIBUTES:
            _check(text, comp, _NUMERIC_OPS, f"attribute {comp.key}", True)
        elif comp.key in RUN_STRING_ATTRIBUTES:
            ops = _STRING_OPS | _SET_OPS if comp.key == "run_id" else _STRING_OPS
            _check(text, comp, ops, f"attribute {comp.key}", False)
        else:
            allowed = ", ".join(sorted(RUN_STRING_ATTRIBUTES | RUN_NUMERIC_ATTRIBUTES))
            raise _error(
                text,
                _Token("word", comp.key, comp.position),
                f"unknown attribute {comp.key!r}; expected one of {allowed} (or prefix the key "
                "with metrics., params. or tags.)",
            )
    return tree


def check_experiment_filter(text: str) -> FilterNode | None:
    """Parses an experiments filter: name, experiment_id, creation_time, last_update_time, tags."""
    tree = parse_filter(text)
    for comp in _comparisons(tree):
        if comp.kind == "tag":
            _check(text, comp, _STRING_OPS | _NULL_OPS, f"tag {comp.key!r}", False)
        elif comp.kind == "attribute" and comp.key in EXPERIMENT_NUMERIC_ATTRIBUTES:
            _check(text, comp, _NUMERIC_OPS, f"attribute {comp.key}", True)
        elif comp.kind == "attribute" and comp.key in EXPERIMENT_STRING_ATTRIBUTES:
            _check(text, comp, _STRING_OPS, f"attribute {comp.key}", False)
        elif comp.kind == "attribute" and comp.key == "experiment_id":
            _check(text, comp, frozenset({"=", "!="}) | _SET_OPS, "attribute experiment_id", False)
        else:
            raise _error(
                text,
                _Token("word", comp.key, comp.position),
                f"cannot filter experiments on {comp.kind} {comp.key!r}; expected name, "
                "experiment_id, creation_time, last_update_time or tags.<key>",
            )
    return tree


def _parse_order_clause(clause: str) -> tuple[str, str, bool]:
    parser = _Parser(clause)
    kind, key, _ = parser.identifier()
    ascending = True
    if parser.current.kind == "word" and parser.current.text.upper() in ("ASC", "DESC"):
        ascending = parser.advance().text.upper() == "ASC"
    if parser.current.kind != "eof":
        raise InvalidParameterValue(
            f"Invalid order_by clause {clause!r} at character {parser.current.position}: "
            "expected '<identifier> [ASC|DESC]'"
        )
    return kind, key, ascending


def parse_run_order_by(clauses: list[str] | tuple[str, ...]) -> list[OrderBy]:
    """Runs order_by clauses (metrics, params, tags, attributes)."""
    result = []
    for clause in clauses:
        kind, key, ascending = _parse_order_clause(clause)
        if kind == "attribute" and key not in RUN_STRING_ATTRIBUTES | RUN_NUMERIC_ATTRIBUTES:
            raise InvalidParameterValue(
                f"Invalid order_by clause {clause!r}: unknown attribute {key!r}; expected one of "
                f"{', '.join(sorted(RUN_STRING_ATTRIBUTES | RUN_NUMERIC_ATTRIBUTES))}"
            )
        if kind == "dataset":
            raise InvalidParameterValue(
                f"Invalid order_by clause {clause!r}: runs cannot be ordered by datasets"
            )
        result.append(OrderBy(kind, "start_time" if key == "created" else key, ascending))
    return result


def parse_experiment_order_by(clauses: list[str] | tuple[str, ...]) -> list[OrderBy]:
    """Experiments order_by clauses (name, experiment_id, creation_time, last_update_time)."""
    allowed = {"name", "experiment_id", "creation_time", "last_update_time"}
    result = []
    for clause in clauses:
        kind, key, ascending = _parse_order_clause(clause)
        if kind != "attribute" or key not in allowed:
            raise InvalidParameterValue(
                f"Invalid order_by clause {clause!r}: experiments are ordered by "
                f"{', '.join(sorted(allowed))}"
            )
        result.append(OrderBy(kind, key, ascending))
    return result
