"""The fields of MLflow's REST requests and how their JSON (or query string) values are read.

MLflow's server reads a GET request from its query string and every other request from a JSON
body, checks each field's JSON type against its proto field, and answers a wrong type with
``Invalid value <json> for parameter '<name>' supplied`` and a missing required field with
``Missing value for required parameter '<name>'`` (INVALID_PARAMETER_VALUE, 400). This module
does that shape check and nothing more: what a value means (key syntax, lengths, limits) is
checked once, by the service behind the contract.

As MLflow's server does (it parses with protobuf's ``ignore_unknown_fields``), a field that the
request does not have is ignored, in a JSON body at any depth and in a query string: a client
newer than this table may send fields it does not know. In a JSON body each field is also read
under its protobuf JSON name (``experimentIds`` for ``experiment_ids``), and a body that spells
one field both ways is refused, as MLflow refuses it; a query string is read by the fields'
proto names only, as MLflow reads it.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RestError, invalid, shown

_DOCS_HINT = "See the API docs for more information about request parameters."


class Kind(enum.Enum):
    """The JSON shape of a field."""

    STR = "string"
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    STR_LIST = "list of strings"
    #: A list of objects (tags, metrics, datasets): each element is read by its own spec.
    OBJECTS = "list of objects"
    #: One object (a dataset inside a dataset input).
    OBJECT = "object"
    #: An enum: its name (e.g. "FINISHED") or number.
    ENUM = "enum name"


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    required: bool = False
    #: For OBJECTS and OBJECT: the spec of each element.
    element: Spec | None = None
    #: For ENUM: name -> number.
    values: Mapping[str, int] | None = None


class Spec:
    """The fields of one request (or of one nested object)."""

    def __init__(self, *fields: Field) -> None:
        self.fields = {f.name: f for f in fields}
        #: Every spelling a field is read under: its name and its protobuf JSON name.
        self._spellings = {f.name: f.name for f in fields}
        self._spellings.update({json_name(f.name): f.name for f in fields})

    def read_json(self, data: Any, where: str = "") -> dict[str, Any]:
        """The fields of a parsed JSON object; absent and null fields are left out."""
        if not isinstance(data, dict):
            raise invalid(
                f"Invalid value {shown(data)} for parameter '{where or 'request body'}' "
                f"supplied: expected a JSON object. {_DOCS_HINT}"
            )
        out: dict[str, Any] = {}
        for spelled, value in data.items():
            name = self._known(spelled, data, where)
            if name is None or value is None:
                continue
            out[name] = _convert(self.fields[name], value, f"{where}.{name}" if where else name)
        self._check_required(out, where)
        return out

    def _known(self, spelled: str, given: Mapping[str, Any], where: str) -> str | None:
        """The field ``spelled`` names (None: not a field, ignored); refuses a request that also
        spells the same field the other way."""
        name = self._spellings.get(spelled)
        if name is not None and name != spelled and name in given:
            full = f"{where}.{name}" if where else name
            raise invalid(
                f"Request specifies both '{full}' and '{spelled}'; provide only one of them."
            )
        return name

    def read_query(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        """The fields of a query string (``parse_qs`` output: every value a string)."""
        out: dict[str, Any] = {}
        for name, values in query.items():
            spec = self.fields.get(name)
            if spec is None:  # MLflow reads a query string by the fields' proto names only
                continue
            if spec.kind is Kind.STR_LIST:
                out[name] = values
            elif spec.kind in (Kind.OBJECTS, Kind.OBJECT):
                try:
                    parsed = json.loads(values[-1])
                except ValueError:
                    raise _wrong(spec, values[-1], name) from None
                out[name] = _convert(spec, parsed, name)
            else:
                out[name] = _from_text(spec, values[-1], name)
        self._check_required(out, "")
        return out

    def _check_required(self, out: dict[str, Any], where: str) -> None:
        for name, spec in self.fields.items():
            if spec.required and (name not in out or out[name] == ""):
                full = f"{where}.{name}" if where else name
                raise invalid(f"Missing value for required parameter '{full}'. {_DOCS_HINT}")


def json_name(name: str) -> str:
    """A field's protobuf JSON name: lowerCamelCase (``run_id`` -> ``runId``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _wrong(spec: Field, value: Any, where: str) -> RestError:
    return invalid(
        f"Invalid value {shown(value)} for parameter '{where}' supplied. Hint: Value was of "
        f"type '{type(value).__name__}', expected {_expected(spec)}. {_DOCS_HINT}"
    )


def _expected(spec: Field) -> str:
    if spec.kind is Kind.ENUM and spec.values:
        return "one of " + ", ".join(spec.values)
    return f"a {spec.kind.value}"


#: Spellings of non-finite numbers that protobuf's JSON mapping (and so MLflow's client) uses.
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _convert(spec: Field, value: Any, where: str) -> Any:
    kind = spec.kind
    if kind is Kind.STR:
        if isinstance(value, str):
            return value
    elif kind is Kind.INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return _from_text(spec, value, where)
    elif kind is Kind.FLOAT:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return _from_text(spec, value, where)
    elif kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
    elif kind is Kind.STR_LIST:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    elif kind is Kind.OBJECTS:
        if isinstance(value, list):
            assert spec.element is not None
            return [spec.element.read_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    elif kind is Kind.OBJECT:
        if isinstance(value, dict):
            assert spec.element is not None
            return spec.element.read_json(value, where)
    elif kind is Kind.ENUM:
        assert spec.values is not None
        if isinstance(value, str) and value in spec.values:
            return spec.values[value]
        if isinstance(value, int) and value in spec.values.values():
            return value
    raise _wrong(spec, value, where)


def _from_text(spec: Field, text: str, where: str) -> Any:
    """A scalar field's value from its text form (query strings; numbers sent as strings)."""
    kind = spec.kind
    try:
        if kind is Kind.STR:
            return text
        if kind is Kind.INT:
            return int(text.strip())
        if kind is Kind.FLOAT:
            special = _SPECIAL_FLOATS.get(text)
            return special if special is not None else float(text)
        if kind is Kind.BOOL and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind is Kind.ENUM:
            return _convert(spec, int(text) if text.isdigit() else text, where)
    except ValueError:
        pass
    raise _wrong(spec, text, where)


def str_field(name: str, required: bool = False) -> Field:
    return Field(name, Kind.STR, required)


def int_field(name: str, required: bool = False) -> Field:
    return Field(name, Kind.INT, required)


def objects(name: str, element: Spec, required: bool = False) -> Field:
    return Field(name, Kind.OBJECTS, required, element=element)


#: A key/value tag (experiments, runs, models, versions, inputs).
TAG = Spec(str_field("key", required=True), str_field("value"))
