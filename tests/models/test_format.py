"""MLflow's model format both ways: models the real mlflow wrote load with mlgrid.pyfunc, and
models mlgrid wrote load with mlflow.pyfunc, from files and through a tracking server."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures.stack import Stack
from sklearn.linear_model import LogisticRegression

import mlgrid
import mlgrid.pyfunc
from mlgrid.exceptions import InvalidParameterValue, MlgridException
from mlgrid.models import infer_signature


class Shift(mlgrid.pyfunc.PythonModel):
    """Adds an offset read from an artifact, plus the ``extra`` param."""

    def load_context(self, context):  # type: ignore[no-untyped-def]
        self.offset = float(Path(context.artifacts["offset"]).read_text())

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input["x"] + self.offset + (params or {}).get("extra", 0.0)


class MlflowShift(mlflow.pyfunc.PythonModel):
    """The same model written against mlflow's own base class."""

    def load_context(self, context):  # type: ignore[no-untyped-def]
        self.offset = float(Path(context.artifacts["offset"]).read_text())

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input["x"] + self.offset + (params or {}).get("extra", 0.0)


FRAME = pd.DataFrame({"x": [1.0, 2.5, -3.0]})
#: MLflow skips inferring requirements in a subprocess (slow here) with explicit ones.
FAST_SKLEARN = {"pip_requirements": ["scikit-learn"], "serialization_format": "cloudpickle"}


@pytest.fixture
def offset_file(tmp_path: Path) -> Path:
    path = tmp_path / "offset.txt"
    path.write_text("10")
    return path


# -- mlflow wrote it, mlgrid loads it --------------------------------------------------------------


def test_mlflow_sklearn_model_loads_through_its_loader_module(
    mlflow_sklearn_dir: Path, sklearn_model: LogisticRegression, iris_like: pd.DataFrame
) -> None:
    model = mlgrid.pyfunc.load_model(str(mlflow_sklearn_dir))
    assert model.loader_module == "mlflow.sklearn"
    assert list(model.predict(iris_like)) == list(sklearn_model.predict(iris_like))
    assert model.signature is not None and model.signature.inputs is not None
    assert model.signature.inputs.names() == ["sepal_length", "sepal_width", "petals"]


def test_mlflow_python_model_loads_with_its_artifacts_and_params(
    tmp_path: Path, offset_file: Path
) -> None:
    mlflow.pyfunc.save_model(
        str(tmp_path / "m"),
        python_model=MlflowShift(),
        artifacts={"offset": str(offset_file)},
        signature=mlflow.models.infer_signature(FRAME, params={"extra": 0.0}),
        pip_requirements=["pandas"],
    )
    model = mlgrid.pyfunc.load_model(str(tmp_path / "m"))
    assert isinstance(model.unwrap_python_model(), MlflowShift)
    assert model.predict(FRAME).tolist() == [11.0, 12.5, 7.0]
    assert model.predict(FRAME, params={"extra": 1.0}).tolist() == [12.0, 13.5, 8.0]


def test_missing_loader_module_is_a_clear_error(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    descriptor = {"flavors": {"python_function": {"loader_module": "nosuchflavor.loader"}}}
    (model_dir / "MLmodel").write_text(yaml.safe_dump(descriptor))
    with pytest.raises(MlgridException) as excinfo:
        mlgrid.pyfunc.load_model(str(model_dir))
    message = str(excinfo.value)
    assert "'nosuchflavor.loader'" in message
    assert "loader_module" in message and "--env-manager virtualenv" in message


def test_model_without_python_function_flavor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"keras": {}}}))
    with pytest.raises(InvalidParameterValue, match="no python_function flavor; flavors: keras"):
        mlgrid.pyfunc.load_model(str(tmp_path))


# -- mlgrid wrote it, mlflow loads it --------------------------------------------------------------


def test_mlgrid_model_has_mlflow_layout(tmp_path: Path, offset_file: Path) -> None:
    signature = infer_signature(FRAME, FRAME["x"])
    mlgrid.pyfunc.save_model(
        tmp_path / "m",
        python_model=Shift(),
        artifacts={"offset": str(offset_file)},
        signature=signature,
        input_example=FRAME.head(2),
    )
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == [
        "MLmodel",
        "artifacts",
        "conda.yaml",
        "input_example.json",
        "python_env.yaml",
        "python_model.pkl",
        "requirements.txt",
        "serving_input_example.json",
    ]
    descriptor = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    flavor = descriptor["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlgrid.pyfunc"
    assert flavor["env"] == {"virtualenv": "python_env.yaml", "conda": "conda.yaml"}
    assert len(descriptor["model_uuid"]) == 32
    assert descriptor["saved_input_example_info"]["type"] == "dataframe"
    conda = yaml.safe_load((tmp_path / "m" / "conda.yaml").read_text())
    assert conda["dependencies"][0] == "python={}.{}.{}".format(*sys.version_info[:3])
    # MLflow reads the same signature back.
    loaded = mlflow.models.Model.load(str(tmp_path / "m"))
    assert loaded.signature.to_dict() == signature.to_dict()


def test_mlgrid_model_loads_and_predicts_with_mlflow(tmp_path: Path, offset_file: Path) -> None:
    mlgrid.pyfunc.save_model(
        tmp_path / "m",
        python_model=Shift(),
        artifacts={"offset": str(offset_file)},
        signature=infer_signature(FRAME, params={"extra": 0.0}),
        input_example=FRAME,
    )
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    assert model.predict(FRAME).tolist() == [11.0, 12.5, 7.0]
    assert model.predict(FRAME, params={"extra": 2.0}).tolist() == [13.0, 14.5, 9.0]
    example = mlflow.models.Model.load(str(tmp_path / "m")).load_input_example(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(example, FRAME)
    with pytest.raises(mlflow.exceptions.MlflowException, match="column x"):
        model.predict(pd.DataFrame({"x": ["ten"]}))


# -- through the tracking server -------------------------------------------------------------------


def test_mlgrid_logged_model_loads_with_mlflow_by_runs_and_models_uri(
    on_stack: Stack, offset_file: Path
) -> None:
    name = f"shift-{uuid.uuid4().hex[:8]}"
    with mlgrid.start_run() as run:
        info = mlgrid.pyfunc.log_model(
            "model",
            python_model=Shift(),
            artifacts={"offset": str(offset_file)},
            input_example=FRAME,
            registered_model_name=name,
        )
    assert info.signature is not None  # inferred from the example
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert by_run.predict(FRAME).tolist() == [11.0, 12.5, 7.0]
    by_version = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert by_version.predict(FRAME).tolist() == [11.0, 12.5, 7.0]


def test_mlflow_logged_sklearn_model_loads_with_mlgrid_by_models_uris(
    on_stack: Stack, sklearn_model: LogisticRegression, iris_like: pd.DataFrame
) -> None:
    name = f"clf-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            sklearn_model,
            name="clf",
            input_example=iris_like.head(2),
            registered_model_name=name,
            **FAST_SKLEARN,
        )
    expected = list(sklearn_model.predict(iris_like))
    by_version = mlgrid.pyfunc.load_model(f"models:/{name}/1")
    assert list(by_version.predict(iris_like)) == expected
    by_logged_id = mlgrid.pyfunc.load_model(info.model_uri)  # models:/<model_id>
    assert list(by_logged_id.predict(iris_like)) == expected
    # The signature MLflow inferred from the example is enforced by mlgrid.
    with pytest.raises(InvalidParameterValue, match="column 'petals': expected long"):
        by_version.predict(iris_like.assign(petals="many"))


def test_mlflow_python_model_logged_to_run_loads_with_mlgrid(
    on_stack: Stack, offset_file: Path
) -> None:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="shift",
            python_model=MlflowShift(),
            artifacts={"offset": str(offset_file)},
            pip_requirements=["pandas"],
        )
    model = mlgrid.pyfunc.load_model(info.model_uri)
    assert model.predict(FRAME).tolist() == [11.0, 12.5, 7.0]
    assert np.isclose(model.predict(pd.DataFrame({"x": [0.5]}))[0], 10.5)
