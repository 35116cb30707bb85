"""Signatures: inferred from data, written in MLflow's JSON form, and enforced at predict."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import mlgrid.pyfunc
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.models import ColSpec, ModelSignature, Schema, TensorSpec, infer_signature

FRAME = pd.DataFrame(
    {
        "age": np.array([31, 45], dtype="int64"),
        "score": [0.5, 0.75],
        "small": np.array([1, 2], dtype="int32"),
        "ratio": np.array([0.1, 0.2], dtype="float32"),
        "city": ["Oslo", "Lima"],
        "member": [True, False],
    }
)


def _identity(model_input):  # type: ignore[no-untyped-def]
    return model_input


@pytest.mark.parametrize(
    "data",
    [FRAME, np.zeros((4, 3), dtype="float32"), np.arange(6, dtype="int64").reshape(2, 3)],
    ids=["dataframe", "float32-matrix", "int64-matrix"],
)
def test_inferred_signature_equals_mlflows(data: object) -> None:
    ours = infer_signature(data, params={"k": 3, "mode": "fast"})
    theirs = mlflow.models.infer_signature(data, params={"k": 3, "mode": "fast"})
    assert ours.to_dict() == theirs.to_dict()


def test_signature_of_dicts_lists_and_scalars() -> None:
    assert infer_signature({"x": [1, 2], "name": "a"}).inputs == Schema(
        (ColSpec("long", "x"), ColSpec("string", "name"))
    )
    records = [{"a": 1.5, "b": "x"}, {"a": 2}]
    assert infer_signature(records).inputs == Schema(
        (ColSpec("double", "a"), ColSpec("string", "b", required=False))
    )
    assert infer_signature([1, 2, 3]).inputs == Schema((ColSpec("long"),))
    assert infer_signature("hello").inputs == Schema((ColSpec("string"),))
    assert infer_signature({"t": np.ones((2, 5))}).inputs == Schema(
        (TensorSpec("float64", (-1, 5), "t"),)
    )


def test_uninferable_data_names_what_is_wrong() -> None:
    with pytest.raises(InvalidParameterValue, match=r"key 'x'.*long, string"):
        infer_signature({"x": [1, "a"]})
    with pytest.raises(InvalidParameterValue, match="object values are not supported"):
        infer_signature([object()])


def test_mlflow_signature_round_trips_through_mlgrid() -> None:
    theirs = mlflow.models.infer_signature(FRAME, FRAME["score"], params={"k": 1})
    ours = ModelSignature.from_dict(theirs.to_dict())
    assert ours.to_dict() == theirs.to_dict()
    assert ours.inputs is not None and ours.inputs.names() == list(FRAME.columns)


def _saved(tmp_path: Path, signature: ModelSignature) -> mlgrid.pyfunc.PyFuncModel:
    mlgrid.pyfunc.save_model(tmp_path / "m", python_model=_identity, signature=signature)
    return mlgrid.pyfunc.load_model(str(tmp_path / "m"))


def test_predict_converts_safe_types(tmp_path: Path) -> None:
    model = _saved(tmp_path, infer_signature(FRAME))
    sent = {
        "age": [31.0, 45.0],  # integral floats become integers
        "score": [1, 2],  # integers widen to doubles
        "small": [1, 2],
        "ratio": [0.5, 1],
        "city": ["Oslo", "Lima"],
        "member": [True, False],
    }
    got = model.predict(sent)
    assert list(got.columns) == list(FRAME.columns)
    assert {c: str(t) for c, t in got.dtypes.items() if c != "city"} == {
        "age": "int64",
        "score": "float64",
        "small": "int32",
        "ratio": "float32",
        "member": "bool",
    }
    assert got["age"].tolist() == [31, 45]


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ({"age": ["old"]}, "column 'age': expected long, got string values"),
        ({"age": [1.5]}, "column 'age': expected long, got the fraction 1.5"),
        ({"score": ["x"]}, "column 'score': expected double, got string values"),
        ({"city": [3]}, "column 'city': expected string, got long values"),
        ({"member": [1]}, "column 'member': expected boolean, got long values"),
        ({"shoe_size": [44]}, "unknown column 'shoe_size'"),
    ],
)
def test_predict_refuses_wrong_input_naming_column_and_type(
    tmp_path: Path, sent: dict, message: str
) -> None:
    model = _saved(tmp_path, infer_signature(FRAME))
    row = {c: FRAME[c].tolist()[:1] for c in FRAME.columns}
    with pytest.raises(InvalidParameterValue, match=message):
        model.predict({**row, **sent})


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    model = _saved(tmp_path, infer_signature(FRAME))
    with pytest.raises(InvalidParameterValue, match=r"missing column 'city' \(string\)"):
        model.predict(FRAME.drop(columns=["city"]))


def test_datetime_columns_accept_iso_strings(tmp_path: Path) -> None:
    signature = infer_signature(pd.DataFrame({"when": [dt.datetime(2026, 1, 2)]}))
    model = _saved(tmp_path, signature)
    got = model.predict({"when": ["2026-12-06T10:00:00"]})
    assert got["when"][0] == pd.Timestamp("2026-12-06 10:00:00")
    with pytest.raises(InvalidParameterValue, match=r"column 'when'.*not a date"):
        model.predict({"when": ["soon"]})


def test_tensor_inputs_are_checked_for_dtype_and_shape(tmp_path: Path) -> None:
    model = _saved(tmp_path, infer_signature(np.zeros((2, 3), dtype="float32")))
    got = model.predict([[1, 2, 3]])
    assert got.dtype == np.float32 and got.shape == (1, 3)
    with pytest.raises(InvalidParameterValue, match=r"expected shape \[-1, 3\], got \[1, 2\]"):
        model.predict([[1, 2]])
    with pytest.raises(InvalidParameterValue, match="expected float32, got <U1"):
        model.predict([["a", "b", "c"]])


def test_params_get_their_declared_defaults(tmp_path: Path) -> None:
    class Echo(mlgrid.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return params

    signature = infer_signature([1.0], params={"temperature": 0.5, "top_k": 3})
    mlgrid.pyfunc.save_model(tmp_path / "m", python_model=Echo(), signature=signature)
    got = mlgrid.pyfunc.load_model(str(tmp_path / "m")).predict([1.0], params={"top_k": 9})
    assert got == {"temperature": 0.5, "top_k": 9}


def test_signature_must_be_a_model_signature(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="signature must be a ModelSignature"):
        mlgrid.pyfunc.save_model(tmp_path / "m", python_model=_identity, signature={"x": 1})
    assert not (tmp_path / "m").exists()


def test_input_example_gives_the_signature_when_none_is_given(tmp_path: Path) -> None:
    mlgrid.pyfunc.save_model(tmp_path / "m", python_model=_identity, input_example=FRAME)
    model = mlgrid.pyfunc.load_model(str(tmp_path / "m"))
    assert model.signature is not None and model.signature.inputs == infer_signature(FRAME).inputs
