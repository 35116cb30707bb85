"""Model packaging on disk: save_model writes a model directory that load_model reads back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import mlgrid
import mlgrid.pyfunc
from mlgrid.exceptions import InvalidParameterValue


class Scaler(mlgrid.pyfunc.PythonModel):
    def load_context(self, context):  # type: ignore[no-untyped-def]
        self.factor = float(Path(context.artifacts["factor"]).read_text())

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        offset = (params or {}).get("offset", 0)
        return [v * self.factor + offset for v in model_input]


def test_saved_model_directory_has_descriptor_pickle_and_environment(tmp_path: Path) -> None:
    factor = tmp_path / "factor.txt"
    factor.write_text("3")
    mlgrid.pyfunc.save_model(
        tmp_path / "model",
        python_model=Scaler(),
        artifacts={"factor": str(factor)},
        pip_requirements=["numpy>=1.26"],
        extra_pip_requirements=["pandas"],
        metadata={"owner": "ann"},
    )
    model_dir = tmp_path / "model"
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == [
        "MLmodel",
        "artifacts",
        "conda.yaml",
        "python_env.yaml",
        "python_model.pkl",
        "requirements.txt",
    ]
    descriptor = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = descriptor["flavors"]["python_function"]
    assert flavor["python_model"] == "python_model.pkl"
    assert flavor["artifacts"]["factor"]["path"] == "artifacts/factor"
    assert descriptor["metadata"] == {"owner": "ann"}
    assert (model_dir / "requirements.txt").read_text() == "numpy>=1.26\npandas\n"
    env = yaml.safe_load((model_dir / "python_env.yaml").read_text())
    assert env["dependencies"] == ["-r requirements.txt"]
    assert env["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")


def test_loaded_model_predicts_with_context_and_params(tmp_path: Path) -> None:
    factor = tmp_path / "factor.txt"
    factor.write_text("2")
    mlgrid.pyfunc.save_model(
        tmp_path / "m", python_model=Scaler(), artifacts={"factor": str(factor)}
    )
    factor.write_text("100")  # the model keeps its own copy
    loaded = mlgrid.pyfunc.load_model(str(tmp_path / "m"))
    assert loaded.predict([1, 2]) == [2.0, 4.0]
    assert loaded.predict([1], params={"offset": 1}) == [3.0]
    assert mlgrid.pyfunc.load_model((tmp_path / "m").as_uri()).predict([5]) == [10.0]


def test_default_requirements_pin_mlgrid_and_cloudpickle(tmp_path: Path) -> None:
    mlgrid.pyfunc.save_model(tmp_path / "m", python_model=lambda x: x)
    requirements = (tmp_path / "m" / "requirements.txt").read_text().splitlines()
    assert requirements[0] == f"mlgrid=={mlgrid.__version__}"
    assert requirements[1].startswith("cloudpickle==")


def test_code_paths_travel_with_the_model(tmp_path: Path) -> None:
    package = tmp_path / "src" / "featurize_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def double(xs):\n    return [2 * x for x in xs]\n")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path / "src")!r})
        import mlgrid.pyfunc, featurize_pkg

        class M(mlgrid.pyfunc.PythonModel):
            def predict(self, context, model_input):
                return featurize_pkg.double(model_input)

        mlgrid.pyfunc.save_model({str(tmp_path / "m")!r}, python_model=M(),
                                 code_paths=[{str(package)!r}])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    # A fresh interpreter without src/ on its path loads the model with its bundled code.
    check = (
        "import mlgrid.pyfunc, sys; print(mlgrid.pyfunc.load_model(sys.argv[1]).predict([1, 2]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", check, str(tmp_path / "m")],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "[2, 4]"


def test_saving_over_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("x")
    with pytest.raises(InvalidParameterValue, match="not empty"):
        mlgrid.pyfunc.save_model(tmp_path / "m", python_model=lambda x: x)


def test_loading_a_directory_without_a_descriptor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="MLmodel"):
        mlgrid.pyfunc.load_model(str(tmp_path))


def test_python_model_must_be_a_model_or_a_function(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="python_model"):
        mlgrid.pyfunc.save_model(tmp_path / "m", python_model=42)  # type: ignore[arg-type]
