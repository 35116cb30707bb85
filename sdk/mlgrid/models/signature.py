"""Model signatures in MLflow's JSON form: what a model takes, returns and accepts as params.

A signature is stored in ``MLmodel`` as three JSON strings (MLflow's layout)::

    signature:
      inputs: '[{"type": "double", "name": "a", "required": true}, ...]'     # column specs
      outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
      params: '[{"name": "k", "type": "long", "default": 1, "shape": null}]'

A schema is either all column specs (a table: named or unnamed columns of one type each) or all
tensor specs (arrays of a numpy dtype and a shape, ``-1`` for any size). Column types are
MLflow's: boolean, integer (32-bit), long (64-bit), float, double, string, binary, datetime.
Richer MLflow types (arrays, objects, maps) are kept as written, so they round-trip, and are
passed through unchecked.

Standard library only: numpy and pandas are imported by the functions that need them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlgrid.exceptions import InvalidParameterValue

__all__ = [
    "COLUMN_TYPES",
    "ColSpec",
    "ModelSignature",
    "ParamSpec",
    "Schema",
    "TensorSpec",
]

#: MLflow's column types and the numpy dtype each converts to.
COLUMN_TYPES: dict[str, str] = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}


@dataclass(frozen=True)
class ColSpec:
    """One column: its type (MLflow's name), its name (None: by position) and whether needed."""

    type: str
    name: str | None = None
    required: bool = True
    #: The spec as MLflow wrote it, for types mlgrid does not check (array, object, map).
    raw: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def checked(self) -> bool:
        return self.type in COLUMN_TYPES

    def to_dict(self) -> dict[str, Any]:
        if self.raw is not None:
            return dict(self.raw)
        out: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            out["name"] = self.name
        out["required"] = self.required
        return out


@dataclass(frozen=True)
class TensorSpec:
    """An array: numpy dtype name and shape (``-1`` = any size), optionally named."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "tensor",
            "tensor-spec": {"dtype": self.dtype, "shape": list(self.shape)},
        }
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Schema:
    """Column specs or tensor specs (never both)."""

    inputs: tuple[ColSpec | TensorSpec, ...]

    def __post_init__(self) -> None:
        kinds = {type(spec) for spec in self.inputs}
        if len(kinds) > 1:
            raise InvalidParameterValue(
                "a schema holds either column specs or tensor specs, not both"
            )

    @property
    def is_tensor(self) -> bool:
        return bool(self.inputs) and isinstance(self.inputs[0], TensorSpec)

    @property
    def has_names(self) -> bool:
        return bool(self.inputs) and all(spec.name is not None for spec in self.inputs)

    def names(self) -> list[str]:
        return [str(spec.name) for spec in self.inputs if spec.name is not None]

    def describe(self) -> str:
        """``a (double), b (long)``: how error messages name what is expected."""
        parts = []
        for spec in self.inputs:
            kind = spec.type if isinstance(spec, ColSpec) else f"tensor {spec.dtype}"
            parts.append(f"{spec.name} ({kind})" if spec.name is not None else kind)
        return ", ".join(parts)

    def to_json(self) -> str:
        return json.dumps([spec.to_dict() for spec in self.inputs])

    @classmethod
    def from_json(cls, text: str, what: str = "schema") -> Schema:
        try:
            items = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterValue(f"{what} is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise InvalidParameterValue(f"{what} must be a JSON list of column or tensor specs")
        return cls(tuple(_spec_from_dict(item, what) for item in items))


def _spec_from_dict(item: Any, what: str) -> ColSpec | TensorSpec:
    if not isinstance(item, dict) or "type" not in item:
        raise InvalidParameterValue(f"{what}: each spec is an object with a 'type', not {item!r}")
    name = item.get("name")
    if item["type"] == "tensor":
        tensor = item.get("tensor-spec") or {}
        if "dtype" not in tensor or "shape" not in tensor:
            raise InvalidParameterValue(
                f"{what}: a tensor spec needs 'tensor-spec' dtype and shape"
            )
        return TensorSpec(str(tensor["dtype"]), tuple(int(n) for n in tensor["shape"]), name)
    kind = str(item["type"])
    required = bool(item.get("required", True))
    return ColSpec(kind, name, required, raw=None if kind in COLUMN_TYPES else dict(item))


@dataclass(frozen=True)
class ParamSpec:
    """A named inference parameter with its type and default (MLflow's ParamSpec)."""

    name: str
    type: str
    default: Any = None
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {  # MLflow's key order, so the JSON strings compare equal
            "name": self.name,
            "default": self.default,
            "shape": list(self.shape) if self.shape is not None else None,
            "type": self.type,
        }


@dataclass(frozen=True)
class ModelSignature:
    """What a model takes (``inputs``), returns (``outputs``) and accepts (``params``)."""

    inputs: Schema | None = None
    outputs: Schema | None = None
    params: tuple[ParamSpec, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``signature`` entry of MLmodel (MLflow's: JSON strings or null)."""
        params = json.dumps([p.to_dict() for p in self.params]) if self.params else None
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": params,
        }

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> ModelSignature:
        inputs = entry.get("inputs")
        outputs = entry.get("outputs")
        params = entry.get("params")
        parsed_params = None
        if params:
            raw = json.loads(params) if isinstance(params, str) else params
            parsed_params = tuple(
                ParamSpec(
                    str(p["name"]),
                    str(p["type"]),
                    p.get("default"),
                    tuple(p["shape"]) if p.get("shape") is not None else None,
                )
                for p in raw
            )
        return cls(
            Schema.from_json(inputs, "signature inputs") if inputs else None,
            Schema.from_json(outputs, "signature outputs") if outputs else None,
            parsed_params,
        )

    def param_defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params or ()}
