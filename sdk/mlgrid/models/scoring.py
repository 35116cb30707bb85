"""MLflow's scoring protocol, without the HTTP: request bodies in, predictions out.

JSON bodies (``Content-Type: application/json``) carry exactly one of

- ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (``index`` ignored);
- ``dataframe_records``: ``[{"col": value, ...}, ...]``;
- ``instances`` or ``inputs``: a tensor (nested lists), named tensors (an object of them), or
  records / columns when the model's signature is column-based;

and optionally ``params`` (the model's inference parameters). ``text/csv`` bodies are a table
with a header row. The answer is ``{"predictions": ...}``: a DataFrame as records, an array or
Series as a list, a dict of arrays as a dict of lists.

Input that does not fit raises :class:`InvalidParameterValue` naming what is wrong; the server
turns it into a 400 with MLflow's ``{"error_code": "BAD_REQUEST", "message": ...}``.
"""

from __future__ import annotations

import io
import json
from typing import Any

from mlgrid.exceptions import InvalidParameterValue

from .signature import ModelSignature

__all__ = ["CONTENT_TYPES", "JSON_FORMATS", "format_predictions", "parse_request"]

JSON_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPES = ("application/json", "text/csv")


def parse_request(
    body: bytes, content_type: str, signature: ModelSignature | None
) -> tuple[Any, dict[str, Any] | None]:
    """(model input, params) of a scoring request body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/csv":
        return _parse_csv(body), None
    if media != "application/json":
        raise UnsupportedContentType(
            f"content type {_short(media or '(none)')} is not supported: send "
            "application/json or text/csv"
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidParameterValue(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidParameterValue(
            f"the JSON body must be an object with one of {', '.join(JSON_FORMATS)}"
        )
    formats = [key for key in JSON_FORMATS if key in payload]
    unknown = [key for key in payload if key not in JSON_FORMATS and key != "params"]
    if len(formats) != 1 or unknown:
        seen = ", ".join(_short(k) for k in [*formats, *unknown]) or "none"
        raise InvalidParameterValue(
            f"the JSON body must hold exactly one of {', '.join(JSON_FORMATS)} (and optionally "
            f"params); it holds: {seen}"
        )
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidParameterValue("params must be a JSON object of parameter names to values")
    key = formats[0]
    value = payload[key]
    inputs = signature.inputs if signature is not None else None
    if key == "dataframe_split":
        return _split(value, inputs is not None and not inputs.is_tensor), params
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidParameterValue("dataframe_records must be a list of objects (rows)")
        return (value if inputs is not None else _frame(value)), params
    return _tensor_input(value, inputs), params


class UnsupportedContentType(InvalidParameterValue):
    """The request's content type is not one the protocol knows (HTTP 415)."""


def _short(text: str, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise InvalidParameterValue(
            "table input needs pandas in the serving environment: pip install pandas"
        ) from exc
    return pandas


def _frame(records: Any, columns: list[Any] | None = None) -> Any:
    try:
        return _pandas().DataFrame(records, columns=columns)
    except (ValueError, TypeError) as exc:
        raise InvalidParameterValue(f"the input is not a table: {exc}") from None


def _split(value: Any, checked_columns: bool) -> Any:
    if not isinstance(value, dict) or "data" not in value:
        raise InvalidParameterValue(
            'dataframe_split must be an object with "data" (a list of rows) and "columns"'
        )
    rows = value["data"]
    columns = value.get("columns")
    if not isinstance(rows, list) or (columns is not None and not isinstance(columns, list)):
        raise InvalidParameterValue("dataframe_split: data is a list of rows, columns a list")
    if checked_columns and columns is not None:
        # The signature check builds the one DataFrame; here only a dict of columns.
        width = len(columns)
        if any(not isinstance(row, list) or len(row) != width for row in rows):
            raise InvalidParameterValue(
                f"dataframe_split: every row must be a list of {width} values, one per column"
            )
        return {str(c): [row[i] for row in rows] for i, c in enumerate(columns)}
    return _frame(rows, columns)


def _tensor_input(value: Any, inputs: Any) -> Any:
    if inputs is not None and not inputs.is_tensor:
        return value  # records, columns or rows: the signature check makes the table
    try:
        import numpy
    except ImportError:
        return value
    try:
        if isinstance(value, dict):
            return {k: numpy.asarray(v) for k, v in value.items()}
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            return _frame(value)
        return numpy.asarray(value)
    except ValueError as exc:
        raise InvalidParameterValue(f"the input is not a regular array: {exc}") from None


def _parse_csv(body: bytes) -> Any:
    pandas = _pandas()
    try:
        return pandas.read_csv(io.BytesIO(body))
    except (ValueError, pandas.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidParameterValue(f"the CSV body cannot be read: {first[:200]}") from None


def _plain(value: Any) -> Any:
    """JSON's form of what json.dumps cannot write itself (numpy scalars, timestamps, bytes)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"predictions of type {type(value).__name__} cannot be written as JSON")


def format_predictions(predictions: Any) -> bytes:
    """``{"predictions": ...}`` as UTF-8 JSON."""
    kind = type(predictions).__name__
    if kind == "DataFrame":
        predictions = predictions.to_dict(orient="records")
    elif kind in ("Series", "ndarray"):
        predictions = predictions.tolist()
    elif isinstance(predictions, dict):
        predictions = {k: _plain(v) if hasattr(v, "tolist") else v for k, v in predictions.items()}
    return json.dumps({"predictions": predictions}, default=_plain, allow_nan=True).encode()
