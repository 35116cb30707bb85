"""Run context and request header providers of the example plugin, seen by the services."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixtures.stack import Stack, start_stack

import mlgrid
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.server import start_server

HEADER = ("x-mlgrid-test-plugin", "1")


class MetadataRecorder(grpc.ServerInterceptor):
    """Remembers the metadata of every call the service receives, by method."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        metadata = {k: v for k, v in handler_call_details.invocation_metadata or ()}  # type: ignore[attr-defined]
        with self._lock:
            self.calls.append((handler_call_details.method, metadata))  # type: ignore[attr-defined]
        return continuation(handler_call_details)

    def metadata_of(self, method_suffix: str) -> list[dict[str, str]]:
        with self._lock:
            return [m for name, m in self.calls if name.endswith(method_suffix)]


@pytest.fixture(scope="module")
def recorded_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, MetadataRecorder]]:
    """A gateway whose tracking backend records the metadata each call arrives with."""
    tmp = tmp_path_factory.mktemp("providers")
    with start_stack(tmp, services=[]) as stack:
        recorder = MetadataRecorder()
        app = create_service_app("tracking", stack.config)
        server = start_server(app.services, interceptors=[recorder])
        try:
            assert stack.gateway.add_backend(server.address)
            yield stack, recorder
        finally:
            server.stop(grace=1.0)
            app.close()


def test_context_tag_and_header_reach_the_service(
    recorded_stack: tuple[Stack, MetadataRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, recorder = recorded_stack
    monkeypatch.setenv("MLGRID_TEST_PLUGIN_CONTEXT", "1")
    mlgrid.set_tracking_uri(stack.tracking_uri)
    with mlgrid.start_run() as run:
        mlgrid.log_param("p", "1")
    stored = mlgrid.get_run(run.info.run_id)
    assert stored.data.tags["test"] == "tag"
    # Other context tags are still there.
    assert "mlflow.user" in stored.data.tags
    created = recorder.metadata_of("/CreateRun")[-1]
    assert created.get(HEADER[0]) == HEADER[1]
    assert all(m.get(HEADER[0]) == "1" for m in recorder.metadata_of("/LogParam"))


def test_explicit_user_tags_win_over_context_tags(
    recorded_stack: tuple[Stack, MetadataRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, _ = recorded_stack
    monkeypatch.setenv("MLGRID_TEST_PLUGIN_CONTEXT", "1")
    mlgrid.set_tracking_uri(stack.tracking_uri)
    with mlgrid.start_run(tags={"test": "mine"}) as run:
        pass
    assert mlgrid.get_run(run.info.run_id).data.tags["test"] == "mine"


def test_out_of_context_providers_add_nothing(
    recorded_stack: tuple[Stack, MetadataRecorder], tmp_path: Path
) -> None:
    stack, recorder = recorded_stack
    mlgrid.set_tracking_uri(stack.tracking_uri)
    before = len(recorder.metadata_of("/CreateRun"))
    with mlgrid.start_run() as run:
        pass
    assert "test" not in mlgrid.get_run(run.info.run_id).data.tags
    after = recorder.metadata_of("/CreateRun")[before:]
    assert after and all(HEADER[0] not in m for m in after)
