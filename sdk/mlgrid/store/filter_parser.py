"""Tokenizer and recursive-descent parser of the search filter grammar (see search_filter)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import MAX_FILTER_COMPARISONS, MAX_FILTER_DEPTH, MAX_FILTER_LIST_VALUES
from mlgrid.request_limits import check_filter_size, shown

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
class Token:
    kind: str  # lparen rparen comma op number string backtick word keyword dot eof
    text: str
    position: int  # 1-based character position

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "eof" else shown(self.text, 40)


def filter_error(text: str, token: Token, why: str) -> InvalidParameterValue:
    where = (
        "at the end"
        if token.kind == "eof"
        else f"at character {token.position} ({shown(token.text, 40)})"
    )
    return InvalidParameterValue(f"Invalid filter {shown(text)} {where}: {why}")


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            bad = Token("bad", text[pos], pos + 1)
            if text[pos] in "'\"":
                raise filter_error(text, bad, "unterminated string (missing closing quote)")
            raise filter_error(text, bad, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind != "ws":
            if kind == "word" and value.upper() in _KEYWORDS:
                tokens.append(Token("keyword", value.upper(), pos + 1))
            else:
                tokens.append(Token(kind, value, pos + 1))
        pos = match.end()
    tokens.append(Token("eof", "", len(text) + 1))
    return tokens


def _unquote(token: Token) -> str:
    quote = token.text[0]
    inner = token.text[1:-1]
    return inner if quote == "`" else inner.replace(quote * 2, quote)


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        #: Parentheses open at the current token, comparisons and IN-list values so far: the
        #: limits of request_limits, checked as the parser goes so that no input costs more.
        self.depth = 0
        self.comparisons = 0
        self.list_values = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.text in words

    def fail(self, why: str, token: Token | None = None) -> InvalidParameterValue:
        return filter_error(self.text, token or self.current, why)

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
            self.depth += 1
            if self.depth > MAX_FILTER_DEPTH:
                raise self.fail(
                    f"parentheses nest deeper than the limit (MAX_FILTER_DEPTH) of "
                    f"{MAX_FILTER_DEPTH}",
                    opening,
                )
            node = self.or_expr()
            self.depth -= 1
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

    def _kind(self, head: str, token: Token) -> str:
        kind = TYPE_ALIASES.get(head.lower())
        if kind is None:
            raise self.fail(
                f"unknown identifier type {shown(head, 80)}; expected one of metrics, params, tags, "
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
        self.comparisons += 1
        if self.comparisons > MAX_FILTER_COMPARISONS:
            raise self.fail(
                f"the filter has more than {MAX_FILTER_COMPARISONS} comparisons, the limit "
                "(MAX_FILTER_COMPARISONS); split the search"
            )
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
                self.list_values += 1
                if self.list_values > MAX_FILTER_LIST_VALUES:
                    raise self.fail(
                        f"the filter's IN lists have more than {MAX_FILTER_LIST_VALUES} values, "
                        "the limit (MAX_FILTER_LIST_VALUES)"
                    )
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
    """The tree of ``text``; None for an empty filter. Raises InvalidParameterValue, also for a
    filter over the limits of :mod:`mlgrid.request_limits` (length, comparisons, nesting)."""
    check_filter_size(text)
    if not text or not text.strip():
        return None
    return Parser(text).parse()
