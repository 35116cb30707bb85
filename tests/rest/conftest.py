"""A stack with MLflow's REST API, and the real ``mlflow`` client pointed at it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from fixtures.stack import Stack, start_stack


@pytest.fixture(scope="session")
def rest_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway (with its REST port) and every service on SQLite and a file artifact root."""
    with start_stack(tmp_path_factory.mktemp("rest_stack"), rest=True) as stack:
        yield stack


@pytest.fixture
def rest_url(rest_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The REST URL, also the tracking and registry URI of MLflow's fluent API (for this test
    only: MLflow keeps both in module globals and in os.environ, which later tests share)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", rest_stack.rest_url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", rest_stack.rest_url)
    yield rest_stack.rest_url
    while mlflow.active_run() is not None:
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@pytest.fixture
def client(rest_url: str) -> mlflow.MlflowClient:
    """MLflow's own client on the REST port."""
    return mlflow.MlflowClient(tracking_uri=rest_url, registry_uri=rest_url)
