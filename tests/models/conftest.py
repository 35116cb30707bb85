"""Fixtures of the models tier: a stack serving MLflow's REST API, the real ``mlflow`` pointed at
it, mlgrid's SDK pointed at the same stack, and a small scikit-learn model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fixtures.stack import Stack, start_stack
from sklearn.linear_model import LogisticRegression

import mlgrid

#: Variables mlflow exports for its child processes; the SDK reads MLFLOW_* names too.
EXPORTED_BY_MLFLOW = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")

#: MLflow skips inferring requirements in a subprocess (slow here) with explicit ones.
FAST_SKLEARN = {"pip_requirements": ["scikit-learn"], "serialization_format": "cloudpickle"}


@pytest.fixture(scope="session")
def models_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway and services (SQLite, file artifacts) with MLflow's REST API on, for this tier."""
    with start_stack(tmp_path_factory.mktemp("models_stack"), rest=True) as stack:
        yield stack


@pytest.fixture
def on_stack(models_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """mlflow (over REST) and mlgrid's SDK (over gRPC) both pointed at the stack."""
    saved = {name: os.environ.get(name) for name in EXPORTED_BY_MLFLOW}
    previous = mlgrid.get_tracking_uri() if mlgrid.tracking_uri.is_tracking_uri_set() else None
    mlgrid.set_tracking_uri(models_stack.tracking_uri)
    mlgrid.set_registry_uri(models_stack.tracking_uri)
    # mlflow exports its URI as MLFLOW_TRACKING_URI, a name the SDK also reads: set both
    # explicitly so each side keeps its own.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", models_stack.rest_url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", models_stack.rest_url)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(models_stack.rest_url)
    mlflow.set_registry_uri(models_stack.rest_url)
    yield models_stack
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlgrid.end_run()
    mlgrid.set_registry_uri(None)
    mlgrid.set_tracking_uri(previous)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def allow_mlflow_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3.x refuses to unpickle python models unless told to (its own safety switch)."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


@pytest.fixture(scope="session")
def iris_like() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "sepal_length": rng.normal(5.8, 0.8, 60),
            "sepal_width": rng.normal(3.0, 0.4, 60),
            "petals": rng.integers(1, 7, 60),
        }
    )
    return frame


@pytest.fixture(scope="session")
def sklearn_model(iris_like: pd.DataFrame) -> LogisticRegression:
    labels = (iris_like["sepal_length"] + iris_like["petals"] > 9).astype(int)
    return LogisticRegression(max_iter=500).fit(iris_like, labels)


@pytest.fixture(scope="session")
def mlflow_sklearn_dir(
    tmp_path_factory: pytest.TempPathFactory,
    sklearn_model: LogisticRegression,
    iris_like: pd.DataFrame,
) -> Path:
    """A model directory written by the real mlflow's sklearn flavor, with a signature."""
    path = tmp_path_factory.mktemp("mlflow_sklearn") / "model"
    signature = mlflow.models.infer_signature(iris_like, sklearn_model.predict(iris_like))
    mlflow.sklearn.save_model(
        sklearn_model,
        str(path),
        signature=signature,
        input_example=iris_like.head(3),
        **FAST_SKLEARN,
    )
    return path
