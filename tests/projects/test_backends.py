"""The backend interface: a plugin backend slots in; the local backend via the interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects import ProjectBackend, SubmittedRun
from mlgrid.projects.submitted import RemoteSubmittedRun
from mlgrid_services.projects.preparation import Submission, load_submission

from .helpers import write
from .service import own_projects_service


class _Finished(SubmittedRun):
    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def get_status(self) -> str:
        return "FINISHED"

    def cancel(self) -> None:
        pass


class RecordingBackend(ProjectBackend):
    """A backend whose runs finish at once, recording what it was given."""

    calls: list[dict[str, Any]] = []

    def run(
        self,
        project_uri,
        entry_point,
        params,
        version,
        backend_config,
        tracking_uri,
        experiment_id,
        run_id,
    ) -> SubmittedRun:  # type: ignore[no-untyped-def]
        RecordingBackend.calls.append(
            {
                "files": sorted(p.name for p in Path(project_uri).iterdir()),
                "entry_point": entry_point,
                "params": params,
                "version": version,
                "config": backend_config,
                "tracking_uri": tracking_uri,
                "experiment_id": experiment_id,
                "run_id": run_id,
            }
        )
        return _Finished(run_id)


def test_a_registered_backend_receives_the_prepared_submission(grpc_stack, tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        {
            "MLproject": "name: b\ndocker_env: {image: 'python:3.11'}\n"
            "entry_points: {main: {parameters: {n: float}, command: 'python t.py {n}'}}\n",
            "t.py": "",
        },
    )
    RecordingBackend.calls.clear()
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        svc.runner.backends.register("recording", RecordingBackend)
        assert {"local", "recording"} <= set(svc.runner.backend_names())
        answer = svc.transport.call(
            svc.transport.projects.SubmitRun,
            pb.SubmitRunRequest(
                backend="recording",
                uri=str(project),
                parameters={"n": "2", "extra": "x"},
                backend_config_json='{"kube-context": "ctx"}',
            ),
        )
        submitted = RemoteSubmittedRun(svc.transport, "recording", answer.run_id)
        assert submitted.wait(timeout=10) is True
    (call,) = RecordingBackend.calls
    assert call["files"] == ["MLproject", "t.py"]
    assert call["params"] == {"n": "2", "extra": "x"}
    assert call["config"]["kube-context"] == "ctx"
    assert call["tracking_uri"] == grpc_stack.tracking_uri
    assert call["run_id"] == answer.run_id
    run = Client(grpc_stack.tracking_uri).get_run(answer.run_id)
    assert run.data.tags["mlflow.project.backend"] == "recording"
    assert run.data.tags["mlflow.project.env"] == "docker"
    assert run.data.params == {"n": "2", "extra": "x"}


def test_the_local_backend_is_a_table_entry_taking_the_same_request(
    grpc_stack, tmp_path: Path
) -> None:
    project = write(tmp_path / "p", {"main.py": "import sys\nprint('args', sys.argv[1:])\n"})
    client = Client(grpc_stack.tracking_uri)
    run = client.create_run("0")
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        backend = svc.runner.backends.get("local")
        assert isinstance(backend, ProjectBackend)
        loaded = load_submission(
            Submission(uri=str(project), entry_point="main.py", parameters={"k": "v"}),
            grpc_stack.tracking_uri,
        )
        backend.check(loaded.request)
        submitted = backend.submit(loaded.request.for_run(run.info.run_id, "0"))
        assert submitted.wait(timeout=30) is True
        out = b"".join(c.data for c in submitted.logs() if c.stream == "stdout")
    assert out == b"args ['--k', 'v']\n"
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert not loaded.request.workdir.exists()  # the backend removed the run's working copy


def test_an_unknown_backend_is_refused_with_the_known_names(grpc_stack, tmp_path: Path) -> None:
    project = write(tmp_path / "p", {"main.py": "print('never')\n"})
    with (
        own_projects_service(grpc_stack.config, tmp_path / "state") as svc,
        pytest.raises(InvalidParameterValue) as caught,
    ):
        svc.runner.submit(Submission(uri=str(project), backend="nowhere"))
    assert "backend 'nowhere' is not available here" in str(caught.value)
    assert "local" in str(caught.value)
