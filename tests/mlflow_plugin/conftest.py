"""Fixtures of the MLflow plugin tier: a real mlgrid stack and the real ``mlflow`` package.

``mlflow_uri`` points MLflow (its fluent API, ``MlflowClient``, ``mlflow.artifacts``) at the
stack's gateway as ``mlgrid://127.0.0.1:<port>``, exactly as a user's environment would, and puts
everything back afterwards so the rest of the suite never sees it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from fixtures.stack import Stack, start_stack

#: Variables mlflow exports for its child processes (set_experiment, start_run, projects).
EXPORTED_BY_MLFLOW = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")


@pytest.fixture(scope="session")
def plugin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway and services on SQLite and a file artifact root, for this tier alone."""
    with start_stack(tmp_path_factory.mktemp("mlflow_plugin")) as stack:
        yield stack


@pytest.fixture
def mlflow_uri(plugin_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``mlgrid://host:port`` of the stack, set as MLflow's tracking and registry URI."""
    uri = f"mlgrid://{plugin_stack.target}"
    # monkeypatch remembers the variables as they were, also after mlflow writes them
    # (set_tracking_uri and set_experiment export theirs for child processes; the SDK, which
    # reads MLFLOW_* names too, must not see them in later tests).
    saved = {name: os.environ.get(name) for name in EXPORTED_BY_MLFLOW}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def client(mlflow_uri: str) -> mlflow.MlflowClient:
    """MLflow's own client on the stack."""
    return mlflow.MlflowClient()


@pytest.fixture
def sdk(plugin_stack: Stack):
    """mlgrid's own SDK client on the same stack (what the other side writes and reads)."""
    from mlgrid.client import Client

    return Client(tracking_uri=plugin_stack.tracking_uri)


@pytest.fixture
def unique() -> str:
    """A fresh suffix for names (the stack is shared by the tier's tests)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def experiment_id(client: mlflow.MlflowClient, unique: str) -> str:
    """A fresh experiment, made active for the fluent API."""
    exp_id = client.create_experiment(f"exp-{unique}")
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
