"""Input examples saved with a model, in MLflow's files and ``saved_input_example_info`` entry.

``input_example.json`` holds the example itself (a DataFrame as ``{"columns", "data"}``, an array
as nested lists, dicts and lists as they are); ``serving_input_example.json`` holds the same as
a request body for the scoring server (``dataframe_split`` or ``inputs``), so a user can replay
it with ``curl -d @serving_input_example.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from mlgrid.exceptions import InvalidParameterValue

__all__ = ["EXAMPLE_FILE", "SERVING_EXAMPLE_FILE", "load_input_example", "save_input_example"]

EXAMPLE_FILE = "input_example.json"
SERVING_EXAMPLE_FILE = "serving_input_example.json"


def _jsonable(value: Any) -> Any:
    """Numpy and datetime values as plain JSON ones."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _optional(name: str) -> Any:
    """The module if installed (an example of its types can only exist when it is)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _encode(example: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(content of input_example.json, the body to serve, the MLmodel info)."""
    pandas = _optional("pandas")
    numpy = _optional("numpy")
    if pandas is not None and isinstance(example, pandas.DataFrame):
        split = example.to_dict(orient="split")
        split.pop("index", None)
        split.pop("index_names", None)
        split.pop("column_names", None)
        split["columns"] = [str(c) for c in split["columns"]]
        info = {"type": "dataframe", "pandas_orient": "split"}
        return split, {"dataframe_split": split}, info
    if numpy is not None and isinstance(example, numpy.ndarray):
        listed = example.tolist()
        return listed, {"inputs": listed}, {"type": "ndarray", "format": "tf-serving"}
    if isinstance(example, dict):
        if numpy is not None and any(isinstance(v, numpy.ndarray) for v in example.values()):
            listed = {k: numpy.asarray(v).tolist() for k, v in example.items()}
            return listed, {"inputs": listed}, {"type": "ndarray", "format": "tf-serving"}
        return example, {"inputs": example}, {"type": "json_object"}
    if isinstance(example, (list, tuple, str, int, float, bool)):
        return (
            list(example) if isinstance(example, tuple) else example,
            {"inputs": example},
            {"type": "json_object"},
        )
    raise InvalidParameterValue(
        f"input_example of type {type(example).__name__} is not supported: use a pandas "
        "DataFrame, a numpy array, a dict, a list or a scalar"
    )


def save_input_example(example: Any, model_dir: Path) -> dict[str, Any]:
    """Writes the example files into ``model_dir``; returns ``saved_input_example_info``."""
    content, serving, info = _encode(example)
    try:
        text = json.dumps(content, default=_jsonable)
        serving_text = json.dumps(serving, default=_jsonable, indent=2)
    except TypeError as exc:
        raise InvalidParameterValue(f"input_example cannot be saved as JSON: {exc}") from None
    (model_dir / EXAMPLE_FILE).write_text(text)
    (model_dir / SERVING_EXAMPLE_FILE).write_text(serving_text)
    return {"artifact_path": EXAMPLE_FILE, "serving_input_path": SERVING_EXAMPLE_FILE, **info}


def load_input_example(model_dir: Path, descriptor: dict[str, Any]) -> Any:
    """The saved example in the form it was given (DataFrame, array, dict, ...), or None."""
    info = descriptor.get("saved_input_example_info")
    if not info:
        return None
    content = json.loads((model_dir / info.get("artifact_path", EXAMPLE_FILE)).read_text())
    if info.get("type") == "dataframe":
        import pandas

        if info.get("pandas_orient", "split") == "split":
            return pandas.DataFrame(content["data"], columns=content.get("columns"))
        return pandas.DataFrame(content)
    if info.get("type") == "ndarray":
        import numpy

        if isinstance(content, dict):
            return {k: numpy.asarray(v) for k, v in content.items()}
        return numpy.asarray(content)
    return content
