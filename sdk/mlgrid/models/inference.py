"""``infer_signature``: a signature read off example data (MLflow's ``infer_signature``).

=====================================  ============================================
data                                   schema
=====================================  ============================================
pandas DataFrame                       a named column per column, typed by dtype
pandas Series                          one unnamed column
numpy array                            one tensor, first dimension -1 (any size)
dict of numpy arrays                   one named tensor per key
dict of scalars or lists               a named column per key
list of dicts (records)                a named column per key seen
list of scalars, a scalar              one unnamed column
=====================================  ============================================
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlgrid.exceptions import InvalidParameterValue

from .signature import ColSpec, ModelSignature, ParamSpec, Schema, TensorSpec

__all__ = ["infer_schema", "infer_signature"]


def infer_signature(
    model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None
) -> ModelSignature:
    """The signature of a model that takes ``model_input``, returns ``model_output`` and
    accepts ``params`` (each optional)."""
    return ModelSignature(
        infer_schema(model_input) if model_input is not None else None,
        infer_schema(model_output) if model_output is not None else None,
        _infer_params(params) if params else None,
    )


def _python_type(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    if isinstance(value, (dt.datetime, dt.date)):
        return "datetime"
    numpy = _numpy_or_none()
    if numpy is not None and isinstance(value, numpy.generic):
        return _dtype_type(numpy.asarray(value).dtype, where)
    raise InvalidParameterValue(
        f"cannot infer a type for {where}: {type(value).__name__} values are not supported "
        "(use bool, int, float, str, bytes or datetime values)"
    )


def _numpy_or_none() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _dtype_type(dtype: Any, where: str, values: Any = None) -> str:
    """MLflow's column type for a numpy/pandas dtype (object columns are looked into)."""
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return (
            "integer"
            if dtype.itemsize <= 4 and not (kind == "u" and dtype.itemsize == 4)
            else "long"
        )
    if kind == "f":
        return "float" if dtype.itemsize <= 4 else "double"
    if kind == "M":
        return "datetime"
    if kind in "US":
        return "string" if kind == "U" else "binary"
    if str(dtype) in ("string", "str"):
        return "string"
    if values is not None:
        types = {_python_type(v, where) for v in values if v is not None and v == v}
        if len(types) == 1:
            return types.pop()
        if types == {"long", "double"}:
            return "double"
        if not types:
            raise InvalidParameterValue(f"cannot infer a type for {where}: it holds no values")
        raise InvalidParameterValue(
            f"cannot infer a type for {where}: it mixes {', '.join(sorted(types))} values"
        )
    raise InvalidParameterValue(f"cannot infer a type for {where}: dtype {dtype} is not supported")


def _values_type(values: list[Any], where: str) -> str:
    types = {_python_type(v, where) for v in values if v is not None}
    if types == {"long", "double"}:
        return "double"
    if len(types) != 1:
        described = ", ".join(sorted(types)) or "no"
        raise InvalidParameterValue(
            f"cannot infer a type for {where}: it holds {described} values; one type is needed"
        )
    return types.pop()


def infer_schema(data: Any) -> Schema:
    """The schema of ``data`` (see the module's table)."""
    numpy = _numpy_or_none()
    pandas = _pandas_or_none()
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return Schema(
            tuple(
                ColSpec(_dtype_type(data[c].dtype, f"column {c!r}", data[c].tolist()), str(c))
                for c in data.columns
            )
        )
    if pandas is not None and isinstance(data, pandas.Series):
        return Schema((ColSpec(_dtype_type(data.dtype, "the series", data.tolist())),))
    if numpy is not None and isinstance(data, numpy.ndarray):
        return Schema((_tensor(data),))
    if isinstance(data, dict):
        if not data:
            raise InvalidParameterValue("cannot infer a schema from an empty dict")
        if numpy is not None and all(isinstance(v, numpy.ndarray) for v in data.values()):
            return Schema(tuple(_tensor(v, str(k)) for k, v in data.items()))
        specs = []
        for key, value in data.items():
            where = f"key {key!r}"
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if numpy is not None and isinstance(value, numpy.ndarray):
                values = value.tolist()
            specs.append(ColSpec(_values_type(values, where), str(key)))
        return Schema(tuple(specs))
    if isinstance(data, (list, tuple)):
        if not data:
            raise InvalidParameterValue("cannot infer a schema from an empty list")
        if all(isinstance(row, dict) for row in data):
            keys: dict[str, list[Any]] = {}
            for row in data:
                for key, value in row.items():
                    keys.setdefault(str(key), []).append(value)
            return Schema(
                tuple(
                    ColSpec(_values_type(v, f"key {k!r}"), k, required=len(v) == len(data))
                    for k, v in keys.items()
                )
            )
        return Schema((ColSpec(_values_type(list(data), "the list")),))
    if data is None:
        raise InvalidParameterValue("cannot infer a schema from None")
    return Schema((ColSpec(_python_type(data, "the value")),))


def _tensor(array: Any, name: str | None = None) -> TensorSpec:
    if array.dtype.kind == "O":
        raise InvalidParameterValue(
            f"cannot infer a tensor spec{' for ' + repr(name) if name else ''}: object arrays "
            "have no fixed dtype"
        )
    shape = (-1, *array.shape[1:]) if array.ndim else ()
    return TensorSpec(str(array.dtype), tuple(int(n) for n in shape), name)


def _pandas_or_none() -> Any:
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _infer_params(params: dict[str, Any]) -> tuple[ParamSpec, ...]:
    specs = []
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            specs.append(
                ParamSpec(name, _values_type(list(value), f"param {name!r}"), list(value), (-1,))
            )
        else:
            specs.append(ParamSpec(name, _python_type(value, f"param {name!r}"), value))
    return tuple(specs)
