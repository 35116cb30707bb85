"""Inputs checked against a signature and converted to what the model was declared to take.

Column schemas give a pandas DataFrame with the schema's columns, in its order, each of the
declared type; tensor schemas give a numpy array (or a dict of them for named tensors). Anything
that does not fit is refused with an :class:`InvalidParameterValue` that names the column (or
tensor) and the type expected: an unknown or missing column, a string where a number is
declared, a fraction where an integer is, a tensor of the wrong shape.

Conversions are MLflow's safe ones: integers widen to floats, integral floats (``3.0``) become
integers, ISO strings become datetimes, base64 strings become bytes for ``binary`` columns.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mlgrid.exceptions import InvalidParameterValue, MlgridException

from .signature import COLUMN_TYPES, ColSpec, Schema, TensorSpec

__all__ = ["conform_input"]

#: How much of an offending value an error message shows.
_SHOWN = 40


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _modules() -> tuple[Any, Any]:
    try:
        import numpy
        import pandas
    except ImportError as exc:
        raise MlgridException(
            "checking inputs against a model signature needs numpy and pandas: "
            "pip install 'mlgrid[pandas]'"
        ) from exc
    return numpy, pandas


def conform_input(data: Any, schema: Schema) -> Any:
    """``data`` checked against ``schema`` and converted (see the module docstring)."""
    if not schema.inputs:
        return data
    if schema.is_tensor:
        return _conform_tensors(data, schema)
    return _conform_columns(data, schema)


# -- columns ------------------------------------------------------------------------------------


def _columns_of(data: Any, schema: Schema, numpy: Any, pandas: Any) -> dict[Any, Any]:
    """The input as {column name or position: values}."""
    if isinstance(data, pandas.DataFrame):
        return {c: data[c].to_numpy() for c in data.columns}
    if isinstance(data, pandas.Series):
        return {data.name if schema.has_names and data.name is not None else 0: data.to_numpy()}
    if isinstance(data, dict):
        return {
            k: (v if isinstance(v, (list, tuple, numpy.ndarray)) else [v]) for k, v in data.items()
        }
    if isinstance(data, (list, tuple)) and data and all(isinstance(r, dict) for r in data):
        keys: dict[Any, None] = {}
        for row in data:
            keys.update(dict.fromkeys(row))
        return {k: [row.get(k) for row in data] for k in keys}
    if isinstance(data, numpy.ndarray) and data.ndim == 2:
        return _by_position(list(data.T), schema)
    if isinstance(data, (list, tuple)) and data and all(isinstance(r, (list, tuple)) for r in data):
        width = {len(r) for r in data}
        if len(width) != 1:
            raise InvalidParameterValue("input rows have different lengths")
        return _by_position([list(col) for col in zip(*data, strict=True)], schema)
    values = data if isinstance(data, (list, tuple, numpy.ndarray)) else [data]
    return _by_position([values], schema)


def _by_position(columns: list[Any], schema: Schema) -> dict[Any, Any]:
    if len(columns) != len(schema.inputs):
        raise InvalidParameterValue(
            f"the input has {len(columns)} column(s); the model takes {len(schema.inputs)}: "
            f"{schema.describe()}"
        )
    return {
        (spec.name if spec.name is not None else i): values
        for i, (spec, values) in enumerate(zip(schema.inputs, columns, strict=True))
    }


def _conform_columns(data: Any, schema: Schema) -> Any:
    numpy, pandas = _modules()
    columns = _columns_of(data, schema, numpy, pandas)
    specs: list[ColSpec] = [s for s in schema.inputs if isinstance(s, ColSpec)]
    if schema.has_names:
        by_name = {str(k): v for k, v in columns.items()}
        unknown = [k for k in by_name if k not in set(schema.names())]
        if unknown:
            raise InvalidParameterValue(
                f"unknown column {_shown(unknown[0])}; the model takes {schema.describe()}"
            )
        converted = {}
        for spec in specs:
            name = str(spec.name)
            if name not in by_name:
                if spec.required:
                    raise InvalidParameterValue(
                        f"missing column {name!r} ({spec.type}); the model takes "
                        f"{schema.describe()}"
                    )
                continue
            converted[name] = _convert_column(by_name[name], spec, name, numpy, pandas)
        return _frame(converted, numpy, pandas)
    if len(columns) != len(specs):
        raise InvalidParameterValue(
            f"the input has {len(columns)} column(s); the model takes {len(specs)}: "
            f"{schema.describe()}"
        )
    converted = {
        key: _convert_column(values, spec, f"#{i}", numpy, pandas)
        for i, (spec, (key, values)) in enumerate(zip(specs, columns.items(), strict=True))
    }
    return _frame(converted, numpy, pandas)


def _frame(columns: dict[Any, Any], numpy: Any, pandas: Any) -> Any:
    """The DataFrame of converted columns. Columns of one numeric dtype become one 2-D block:
    pandas builds it, and scikit-learn validates it, several times faster than one block per
    column (a large part of a one-row prediction; see bench/serving.py)."""
    arrays = list(columns.values())
    first = arrays[0] if arrays else None
    if (
        len(arrays) > 1
        and isinstance(first, numpy.ndarray)
        and first.dtype.kind in "iuf"
        and all(isinstance(a, numpy.ndarray) and a.dtype == first.dtype for a in arrays)
    ):
        return pandas.DataFrame(numpy.column_stack(arrays), columns=list(columns), copy=False)
    return pandas.DataFrame(columns, copy=False)


def _describe(array: Any) -> str:
    kind = array.dtype.kind
    names = {
        "b": "boolean",
        "i": "long",
        "u": "long",
        "f": "double",
        "U": "string",
        "M": "datetime",
    }
    if kind in names:
        return f"{names[kind]} values"
    bad = next((v for v in array if v is not None), None)
    return f"{type(bad).__name__} value {_shown(bad)}"


def _convert_column(values: Any, spec: ColSpec, name: str, numpy: Any, pandas: Any) -> Any:
    if not spec.checked:
        return values
    array = values if isinstance(values, numpy.ndarray) else numpy.asarray(values)
    kind = array.dtype.kind
    target = spec.type

    def refuse(got: str) -> InvalidParameterValue:
        return InvalidParameterValue(f"column {name!r}: expected {target}, got {got}")

    if kind == "O":
        array = _from_objects(array, spec, numpy, refuse)
        kind = array.dtype.kind
    if target == "boolean":
        if kind != "b":
            raise refuse(_describe(array))
        return array
    if target in ("integer", "long"):
        if kind in "iu":
            return array.astype(COLUMN_TYPES[target], copy=False)
        if kind == "f":
            finite = numpy.isfinite(array)
            if not finite.all():
                if spec.required:
                    raise refuse("a missing value (the column is required)")
                return array  # optional integers with gaps stay floats, as in pandas
            if (array != numpy.floor(array)).any():
                fraction = array[array != numpy.floor(array)][0]
                raise refuse(f"the fraction {_shown(float(fraction))}")
            return array.astype(COLUMN_TYPES[target])
        raise refuse(_describe(array))
    if target in ("float", "double"):
        if kind in "iuf":
            return array.astype(COLUMN_TYPES[target], copy=False)
        raise refuse(_describe(array))
    if target == "string":
        if kind == "U":
            return array.astype(object)
        if kind == "O":
            return array
        raise refuse(_describe(array))
    if target == "binary":
        if kind in "SO":
            return array.astype(object)
        raise refuse(_describe(array))
    # datetime
    if kind == "M":
        return array
    if kind in "UO":
        try:
            return pandas.to_datetime(array).to_numpy()
        except (ValueError, TypeError):
            bad = next(iter(array), None)
            raise refuse(f"{_shown(bad)}, which is not a date and time") from None
    raise refuse(_describe(array))


def _from_objects(array: Any, spec: ColSpec, numpy: Any, refuse: Any) -> Any:
    """An object column (mixed Python values, None for missing) as a typed array."""
    present = [v for v in array if v is not None and v == v]
    if len(present) != len(array) and spec.required:
        raise refuse("a missing value (the column is required)")
    target = spec.type
    if target in ("string", "datetime"):
        bad = next((v for v in present if not isinstance(v, str)), None)
        if target == "string" and bad is not None:
            raise refuse(f"{type(bad).__name__} value {_shown(bad)}")
        return array
    if target == "binary":
        return numpy.asarray([_as_bytes(v, refuse) if v is not None else None for v in array])
    if target == "boolean":
        bad = next((v for v in present if not isinstance(v, (bool, numpy.bool_))), None)
        if bad is not None:
            raise refuse(f"{type(bad).__name__} value {_shown(bad)}")
        return numpy.asarray(array, dtype=bool)
    bad = next(
        (
            v
            for v in present
            if isinstance(v, (bool, numpy.bool_)) or not isinstance(v, (int, float, numpy.number))
        ),
        None,
    )
    if bad is not None:
        raise refuse(f"{type(bad).__name__} value {_shown(bad)}")
    return numpy.asarray([numpy.nan if v is None else v for v in array], dtype="float64")


def _as_bytes(value: Any, refuse: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):  # JSON carries binary columns base64-encoded, as in MLflow
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise refuse(f"{_shown(value)}, which is not base64") from None
    raise refuse(f"{type(value).__name__} value {_shown(value)}")


# -- tensors ------------------------------------------------------------------------------------


def _conform_tensors(data: Any, schema: Schema) -> Any:
    numpy, pandas = _modules()
    specs: list[TensorSpec] = [s for s in schema.inputs if isinstance(s, TensorSpec)]
    if schema.has_names and (len(specs) > 1 or isinstance(data, dict)):
        if isinstance(data, pandas.DataFrame):
            data = {c: data[c].to_numpy() for c in data.columns}
        if not isinstance(data, dict):
            raise InvalidParameterValue(
                f"the model takes named tensors ({schema.describe()}); send an object of them"
            )
        unknown = [k for k in data if k not in set(schema.names())]
        if unknown:
            raise InvalidParameterValue(
                f"unknown tensor {_shown(unknown[0])}; the model takes {schema.describe()}"
            )
        out = {}
        for spec in specs:
            if spec.name not in data:
                raise InvalidParameterValue(
                    f"missing tensor {spec.name!r}; the model takes {schema.describe()}"
                )
            out[str(spec.name)] = _convert_tensor(data[spec.name], spec, repr(spec.name), numpy)
        return out
    if isinstance(data, pandas.DataFrame):
        data = data.to_numpy()
    name = repr(specs[0].name) if specs[0].name is not None else "input"
    return _convert_tensor(data, specs[0], name, numpy)


def _convert_tensor(values: Any, spec: TensorSpec, name: str, numpy: Any) -> Any:
    try:
        array = values if isinstance(values, numpy.ndarray) else numpy.asarray(values)
    except ValueError:
        raise InvalidParameterValue(
            f"tensor {name}: expected {spec.dtype} of shape {list(spec.shape)}, got ragged rows"
        ) from None
    target = numpy.dtype(spec.dtype)
    kind = array.dtype.kind
    ok = (
        kind == target.kind
        or (target.kind == "f" and kind in "iu")
        or (target.kind in "iu" and kind in "iu")
        or (
            target.kind in "iu"
            and kind == "f"
            and bool(numpy.isfinite(array).all())
            and bool((array == numpy.floor(array)).all())
        )
    )
    if not ok:
        raise InvalidParameterValue(
            f"tensor {name}: expected {spec.dtype}, got {array.dtype} values"
        )
    if len(spec.shape) != array.ndim or any(
        want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=False)
    ):
        raise InvalidParameterValue(
            f"tensor {name}: expected shape {list(spec.shape)}, got {list(array.shape)}"
        )
    return array.astype(target, copy=False)
