"""MLflow 3's logged-model search filter and ordering, on the shared filter grammar.

The grammar is :mod:`mlgrid.store.search_filter`'s (MLflow's, plus ``OR`` and parentheses).
What a logged-model search accepts, following MLflow's SQL store:

- attributes (no prefix, or ``attributes.``): ``name``, ``model_id``, ``model_type``,
  ``source_run_id``, ``status`` (``PENDING``, ``READY``, ``FAILED``) compared as strings
  (``= != LIKE ILIKE IN NOT IN``; status ``= != IN NOT IN``); ``creation_timestamp``
  (aliases ``creation_time``, ``creation_timestamp_ms``) and ``last_updated_timestamp``
  (``last_updated_timestamp_ms``) compared as numbers;
- ``metrics.<key>`` compared as a number with the model's latest value of that metric (greatest
  step, then timestamp, then value), within the request's datasets when it names any;
- ``params.<key>`` and ``tags.<key>`` compared as strings (beyond MLflow: also ``IS NULL``).

Order by an attribute or ``metrics.<key>``; ties break on ``creation_timestamp DESC, model_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgrid.exceptions import InvalidParameterValue

from .filter_parser import Comparison, FilterNode, Token, filter_error, parse_filter
from .search_filter import _check, _comparisons

__all__ = [
    "LOGGED_MODEL_STATUS_NAMES",
    "LoggedModelOrder",
    "check_logged_model_filter",
    "logged_model_attribute",
    "parse_logged_model_order_by",
]

#: Attribute names (and aliases) → the canonical attribute.
_ATTRIBUTE_ALIASES = {
    "name": "name",
    "model_id": "model_id",
    "model_type": "model_type",
    "source_run_id": "source_run_id",
    "status": "status",
    "creation_timestamp": "creation_timestamp",
    "creation_timestamp_ms": "creation_timestamp",
    "creation_time": "creation_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "last_updated_timestamp_ms": "last_updated_timestamp",
}
_NUMERIC_ATTRIBUTES = frozenset({"creation_timestamp", "last_updated_timestamp"})

#: MLflow's status names in filters → LoggedModelStatus numbers.
LOGGED_MODEL_STATUS_NAMES = {"UNSPECIFIED": 0, "PENDING": 1, "READY": 2, "FAILED": 3}

_NUMERIC_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})
_NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
_STATUS_OPS = frozenset({"=", "!=", "IN", "NOT IN"})


def logged_model_attribute(name: str) -> str | None:
    """The canonical attribute called ``name`` (aliases resolved), or None if there is none."""
    return _ATTRIBUTE_ALIASES.get(name)


def _unknown_attribute(text: str, comp: Comparison) -> InvalidParameterValue:
    allowed = ", ".join(sorted(_ATTRIBUTE_ALIASES))
    return filter_error(
        text,
        Token("word", comp.key, comp.position),
        f"unknown logged model attribute {comp.key!r}; expected one of {allowed} (or prefix "
        "the key with metrics., params. or tags.)",
    )


def _check_status(text: str, comp: Comparison) -> None:
    values = comp.value if isinstance(comp.value, tuple) else (comp.value,)
    for value in values:
        if not isinstance(value, str) or value.upper() not in LOGGED_MODEL_STATUS_NAMES:
            raise filter_error(
                text,
                Token("word", comp.key, comp.position),
                f"unknown logged model status {value!r}; expected one of "
                f"{', '.join(LOGGED_MODEL_STATUS_NAMES)}",
            )


def check_logged_model_filter(text: str) -> FilterNode | None:
    """Parses a logged-model filter and checks identifiers, operators and values. Attribute
    comparisons come back with canonical names (aliases resolved)."""
    tree = parse_filter(text)
    for comp in _comparisons(tree):
        if comp.kind == "metric":
            _check(text, comp, _NUMERIC_OPS, f"metric {comp.key!r}", True)
        elif comp.kind in ("param", "tag"):
            _check(text, comp, _STRING_OPS | _NULL_OPS, f"{comp.kind} {comp.key!r}", False)
        elif comp.kind == "attribute":
            name = logged_model_attribute(comp.key)
            if name is None:
                raise _unknown_attribute(text, comp)
            if name in _NUMERIC_ATTRIBUTES:
                _check(text, comp, _NUMERIC_OPS, f"attribute {comp.key}", True)
            elif name == "status":
                _check(text, comp, _STATUS_OPS, "attribute status", False)
                _check_status(text, comp)
            else:
                _check(text, comp, _STRING_OPS, f"attribute {comp.key}", False)
        else:
            raise filter_error(
                text,
                Token("word", comp.key, comp.position),
                f"cannot filter logged models on {comp.kind} {comp.key!r}; use attributes, "
                "metrics.<key>, params.<key> or tags.<key> (scope metrics to datasets with the "
                "request's datasets)",
            )
    return tree


@dataclass(frozen=True)
class LoggedModelOrder:
    """One ordering clause: an attribute (canonical name) or a metric, optionally scoped to a
    dataset."""

    kind: str  # "attribute" or "metric"
    key: str
    ascending: bool = True
    dataset_name: str = ""
    dataset_digest: str = ""


def parse_logged_model_order_by(
    clauses: list[tuple[str, bool, str, str]],
) -> list[LoggedModelOrder]:
    """Checks ``(field_name, ascending, dataset_name, dataset_digest)`` clauses."""
    result = []
    for field_name, ascending, dataset_name, dataset_digest in clauses:
        if not field_name:
            raise InvalidParameterValue("Invalid order_by: field_name must not be empty")
        kind, _, key = field_name.partition(".")
        if not key:
            name = logged_model_attribute(field_name)
            if name is None:
                raise InvalidParameterValue(
                    f"Invalid order_by field_name {field_name[:100]!r}: expected one of "
                    f"{', '.join(sorted(_ATTRIBUTE_ALIASES))} or metrics.<key>"
                )
            if dataset_name or dataset_digest:
                raise InvalidParameterValue(
                    f"Invalid order_by {field_name!r}: dataset_name and dataset_digest may only "
                    "be given when ordering by a metric"
                )
            result.append(LoggedModelOrder("attribute", name, ascending))
            continue
        if kind not in ("metrics", "metric"):
            raise InvalidParameterValue(
                f"Invalid order_by field_name {field_name[:100]!r}: logged models are ordered "
                "by attributes or metrics.<key> only"
            )
        if dataset_digest and not dataset_name:
            raise InvalidParameterValue(
                f"Invalid order_by {field_name[:100]!r}: dataset_digest needs dataset_name"
            )
        result.append(
            LoggedModelOrder("metric", key.strip('`"'), ascending, dataset_name, dataset_digest)
        )
    return result
