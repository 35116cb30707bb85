"""Registry search grammar: filters and orderings, parsed once into plain data.

Filters are comparisons joined by ``AND`` (MLflow's registry grammar)::

    name = 'fraud' AND tags.team ILIKE 'risk%'
    name IN ('a', 'b') AND version_number >= 3 AND tags."my key" != 'x'

Identifiers are attribute names (``name``, ``version_number``, ...) or ``tags.<key>`` where the
key may be quoted with double quotes or backticks. Strings are single-quoted (a quote inside is
doubled); numbers are bare. Which attributes and operators are allowed depends on the entity, so
callers pass a :class:`Grammar`. Errors name the offending part and list what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import MAX_FILTER_COMPARISONS
from mlgrid.request_limits import check_filter_size, check_order_by_count, shown

STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NUMBER_OPS = ("=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN")
TAG_OPS = ("=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<quoted>"[^"]*"|`[^`]*`)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|>=|<=|=|>|<)
      | (?P<punct>[(),.])
      | (?P<word>[A-Za-z_][A-Za-z0-9_:\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Comparison:
    """``kind`` is "attribute" or "tag"; ``value`` is str, int, a tuple of them, or None."""

    kind: str
    key: str
    op: str
    value: object


@dataclass(frozen=True)
class OrderBy:
    key: str
    ascending: bool


@dataclass(frozen=True)
class Grammar:
    """What one entity's search accepts: attribute -> "string" | "number", and orderings."""

    entity: str
    attributes: dict[str, str]
    order_keys: tuple[str, ...]
    #: Alternative spellings of attributes (MLflow accepts ``timestamp`` for creation time).
    synonyms: dict[str, str]


MODEL_GRAMMAR = Grammar(
    entity="registered models",
    attributes={"name": "string"},
    order_keys=("name", "creation_timestamp", "last_updated_timestamp"),
    synonyms={"timestamp": "creation_timestamp"},
)

VERSION_GRAMMAR = Grammar(
    entity="model versions",
    attributes={
        "name": "string",
        "version_number": "number",
        "run_id": "string",
        "source_path": "string",
    },
    order_keys=("name", "version_number", "creation_timestamp", "last_updated_timestamp"),
    synonyms={"timestamp": "creation_timestamp", "version": "version_number"},
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidParameterValue(
                f"invalid filter {shown(text)}: unexpected text at position {pos}: "
                f"{text[pos : pos + 20]!r}"
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, grammar: Grammar) -> None:
        self.text = text
        self.grammar = grammar
        self.tokens = _tokenize(text)
        self.pos = 0

    def error(self, why: str) -> InvalidParameterValue:
        return InvalidParameterValue(
            f"invalid filter for {self.grammar.entity} {shown(self.text)}: {why}"
        )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise self.error("it ends too early")
        self.pos += 1
        return token

    def take_word(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> list[Comparison]:
        comparisons = [self.comparison()]
        while self.peek() is not None:
            if not self.take_word("AND"):
                raise self.error(
                    f"expected AND, found {shown(self.take()[1], 80)} (only AND joins terms)"
                )
            if len(comparisons) >= MAX_FILTER_COMPARISONS:
                raise self.error(
                    f"it has more than {MAX_FILTER_COMPARISONS} comparisons, the limit "
                    "(MAX_FILTER_COMPARISONS)"
                )
            comparisons.append(self.comparison())
        return comparisons

    def identifier(self) -> tuple[str, str]:
        kind, text = self.take()
        if kind == "quoted":
            text = text[1:-1]
        elif kind != "word":
            raise self.error(f"expected an attribute or tags.<key>, found {shown(text, 80)}")
        nxt = self.peek()
        if nxt == ("punct", "."):
            self.pos += 1
            key_kind, key = self.take()
            if key_kind == "quoted":
                key = key[1:-1]
            elif key_kind not in ("word", "number"):
                raise self.error(f"expected a key after {shown(text, 80)}., found {shown(key, 80)}")
            prefix = text.lower()
            if prefix in ("tag", "tags"):
                return "tag", key
            if prefix in ("attribute", "attributes", "attr"):
                return "attribute", self.attribute(key)
            raise self.error(f"unknown prefix {shown(text, 80)}; use tags.<key> or an attribute")
        return "attribute", self.attribute(text)

    def attribute(self, name: str) -> str:
        name = self.grammar.synonyms.get(name.lower(), name.lower())
        if name not in self.grammar.attributes:
            allowed = ", ".join([*self.grammar.attributes, "tags.<key>"])
            raise self.error(f"unknown attribute {shown(name, 80)}; allowed: {allowed}")
        return name

    def operator(self) -> str:
        kind, text = self.take()
        if kind == "op":
            return text
        upper = text.upper()
        if kind == "word" and upper in ("LIKE", "ILIKE", "IN"):
            return upper
        if kind == "word" and upper == "NOT" and self.take_word("IN"):
            return "NOT IN"
        if kind == "word" and upper == "IS":
            if self.take_word("NOT"):
                if self.take_word("NULL"):
                    return "IS NOT NULL"
            elif self.take_word("NULL"):
                return "IS NULL"
        raise self.error(f"expected a comparison operator, found {shown(text, 80)}")

    def scalar(self, expected: str) -> str | int:
        kind, text = self.take()
        if kind == "string":
            if expected == "number":
                raise self.error(f"expected a number, found the string {shown(text, 80)}")
            return text[1:-1].replace("''", "'")
        if kind == "number":
            if expected == "string":
                raise self.error(
                    f"expected a quoted string, found {shown(text, 80)} (quote it: '{text}')"
                )
            if "." in text:
                raise self.error(f"expected a whole number, found {text}")
            return int(text)
        raise self.error(f"expected a value, found {shown(text, 80)}")

    def comparison(self) -> Comparison:
        kind, key = self.identifier()
        op = self.operator()
        value_type = "string" if kind == "tag" else self.grammar.attributes[key]
        allowed = (
            TAG_OPS if kind == "tag" else (STRING_OPS if value_type == "string" else NUMBER_OPS)
        )
        if op not in allowed:
            raise self.error(
                f"operator {op} is not allowed on {shown(key, 80)}; allowed: {', '.join(allowed)}"
            )
        value: object
        if op in ("IS NULL", "IS NOT NULL"):
            value = None
        elif op in ("IN", "NOT IN"):
            if self.take() != ("punct", "("):
                raise self.error(f"{op} needs a parenthesised list, e.g. ('a', 'b')")
            items = [self.scalar(value_type)]
            while self.peek() == ("punct", ","):
                self.pos += 1
                items.append(self.scalar(value_type))
            if self.take() != ("punct", ")"):
                raise self.error(f"the {op} list is not closed with ')'")
            value = tuple(items)
        else:
            value = self.scalar(value_type)
        return Comparison(kind, key, op, value)


def parse_filter(text: str, grammar: Grammar) -> list[Comparison]:
    """The comparisons of ``text`` (empty for a blank filter)."""
    check_filter_size(text)
    if not text or not text.strip():
        return []
    return _Parser(text, grammar).parse()


def parse_order_by(clauses: Sequence[str], grammar: Grammar) -> list[OrderBy]:
    """``["name ASC", "version_number DESC"]`` -> OrderBy list; unknown keys are refused."""
    check_order_by_count(clauses)
    result: list[OrderBy] = []
    for clause in clauses:
        check_filter_size(clause, "order_by clause")
        parts = clause.split()
        if not parts or len(parts) > 2:
            raise InvalidParameterValue(
                f"invalid order_by clause {shown(clause)}: use '<key> [ASC|DESC]'"
            )
        key = parts[0].lower()
        key = grammar.synonyms.get(key, key)
        if key not in grammar.order_keys:
            raise InvalidParameterValue(
                f"invalid order_by key {shown(parts[0], 80)} for {grammar.entity}; "
                f"allowed: {', '.join(grammar.order_keys)}"
            )
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise InvalidParameterValue(
                f"invalid order_by direction {shown(parts[1], 80)} in {shown(clause)}: use ASC or DESC"
            )
        if any(existing.key == key for existing in result):
            raise InvalidParameterValue(f"order_by names {shown(key, 80)} twice")
        result.append(OrderBy(key, direction == "ASC"))
    return result
