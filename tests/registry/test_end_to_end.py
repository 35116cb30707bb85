"""Train, log, register, alias and load a model through a running stack (gateway + services)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import mlgrid
import mlgrid.pyfunc
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.models import resolve_model_uri


class LinearModel(mlgrid.pyfunc.PythonModel):
    """y = X @ w + b, fitted by least squares; the bias comes from an artifact file."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        self.bias = 0.0

    def load_context(self, context: mlgrid.pyfunc.PythonModelContext) -> None:
        self.bias = float(Path(context.artifacts["bias"]).read_text())

    def predict(self, context, model_input):  # type: ignore[no-untyped-def]
        return np.asarray(model_input) @ self.weights + self.bias


def _train() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(50, 3))
    target = features @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.01, size=50)
    weights, *_ = np.linalg.lstsq(features, target, rcond=None)
    return features, weights


@pytest.fixture(params=["grpc_stack", "grpc_stack_pg"], ids=["sqlite", "postgresql"])
def tracking(request: pytest.FixtureRequest) -> Iterator[str]:
    """The fluent API pointed at a stack (SQLite or PostgreSQL behind it) for one test."""
    stack = request.getfixturevalue(request.param)
    previous = mlgrid.get_tracking_uri() if mlgrid.tracking_uri.is_tracking_uri_set() else None
    mlgrid.set_tracking_uri(stack.tracking_uri)
    try:
        yield stack.tracking_uri
    finally:
        mlgrid.end_run()
        mlgrid.set_tracking_uri(previous)


def test_log_register_alias_load_and_predict(tracking: str, tmp_path: Path) -> None:
    features, weights = _train()
    bias_file = tmp_path / "bias.txt"
    bias_file.write_text("0.25")
    name = f"linear-{uuid.uuid4().hex[:8]}"
    with mlgrid.start_run():
        info = mlgrid.pyfunc.log_model(
            "model",
            python_model=LinearModel(weights),
            artifacts={"bias": str(bias_file)},
            pip_requirements=["numpy"],
        )
    expected = features @ weights + 0.25
    assert info.model_uri == f"runs:/{info.run_id}/model"

    version = mlgrid.register_model(info.model_uri, name, tags={"trained_on": "synthetic"})
    assert (version.version, version.run_id, version.tags) == (
        "1",
        info.run_id,
        {"trained_on": "synthetic"},
    )
    client = mlgrid.Client()
    client.set_registered_model_alias(name, "champion", version.version)

    loaded = mlgrid.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_allclose(loaded.predict(features), expected)
    from_run = mlgrid.pyfunc.load_model(info.model_uri)
    np.testing.assert_allclose(from_run.predict(features[:5]), expected[:5])
    assert loaded.metadata["run_id"] == info.run_id
    # The registered files are the run's: the download URI is inside its artifact root.
    run_root = client.get_run(info.run_id).info.artifact_uri
    assert client.get_model_version_download_uri(name, "1") == f"{run_root}/model"


def test_log_model_with_registered_model_name_and_models_uris(tracking: str) -> None:
    name = f"doubler-{uuid.uuid4().hex[:8]}"
    with mlgrid.start_run():
        first = mlgrid.pyfunc.log_model(
            "m", python_model=lambda x: [2 * v for v in x], registered_model_name=name
        )
    with mlgrid.start_run():
        second = mlgrid.pyfunc.log_model(
            "m", python_model=lambda x: [3 * v for v in x], registered_model_name=name
        )
    assert (first.registered_model_version, second.registered_model_version) == ("1", "2")
    client = mlgrid.Client()
    client.transition_model_version_stage(name, "1", "production")
    assert mlgrid.pyfunc.load_model(f"models:/{name}/latest").predict([1, 2]) == [3, 6]
    assert mlgrid.pyfunc.load_model(f"models:/{name}/1").predict([1, 2]) == [2, 4]
    assert mlgrid.pyfunc.load_model(f"models:/{name}/Production").predict([1]) == [2]
    requirements = mlgrid.artifacts.load_text(f"models:/{name}/2/requirements.txt")
    assert f"mlgrid=={mlgrid.__version__}" in requirements
    assert resolve_model_uri(f"models:/{name}/2").endswith(f"/{second.run_id}/artifacts/m")
    with pytest.raises(ResourceDoesNotExist, match="Staging"):
        mlgrid.pyfunc.load_model(f"models:/{name}/Staging")
    with pytest.raises(InvalidParameterValue, match="models:/"):
        mlgrid.pyfunc.load_model(f"models:/{name}/nonsense")
