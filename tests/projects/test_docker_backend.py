"""The docker backend end to end: real containers on the real engine, logging to a real stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.submitted import RemoteSubmittedRun
from mlgrid.transport import Transport
from mlgrid_services.projects.app import create_runner
from mlgrid_services.projects.docker_backend import run as docker_run
from mlgrid_services.projects.docker_backend.run import RUN_ID_LABEL

from .helpers import write
from .serve_projects import config_argument
from .service import own_projects_service


def _mlproject(image: str, command: str, extra: str = "") -> str:
    return f"name: dockerized\ndocker_env:\n  image: {image}\n{extra}entry_points:\n  main:\n    command: {command!r}\n"


def _submit(svc, project: Path, **fields) -> RemoteSubmittedRun:  # type: ignore[no-untyped-def]
    answer = svc.transport.call(
        svc.transport.projects.SubmitRun,
        pb.SubmitRunRequest(backend="docker", uri=str(project), **fields),
    )
    return RemoteSubmittedRun(svc.transport, "docker", answer.run_id)


def _output(submitted: RemoteSubmittedRun, stream: str = "stdout") -> str:
    return b"".join(c.data for c in submitted.logs() if c.stream == stream).decode()


def _containers_of(engine, run_id: str) -> list[object]:  # type: ignore[no-untyped-def]
    return engine.client().containers.list(all=True, filters={"label": f"{RUN_ID_LABEL}={run_id}"})


def test_a_built_image_runs_the_project_which_logs_to_the_stack(
    container_engine, grpc_stack, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {
            "MLproject": _mlproject(
                container_engine.python_image,
                "python train.py --alpha {alpha}",
                "",
            ).replace(
                "    command:",
                "    parameters:\n      alpha: {type: float, default: 0.5}\n    command:",
            ),
            "train.py": (
                "import os, sys, mlgrid\n"
                "alpha = float(sys.argv[2])\n"
                "with mlgrid.start_run():\n"
                "    mlgrid.log_metric('loss', 1 - alpha)\n"
                "    mlgrid.log_text('trained in ' + os.getcwd(), 'note.txt')\n"
                "print('trained', alpha)\n"
                "print('to stderr', file=sys.stderr)\n"
            ),
        },
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted = _submit(svc, project, parameters={"alpha": "0.75"}, build_image=True)
        assert submitted.wait(timeout=600) is True, _output(submitted, "system")
        assert _output(submitted) == "trained 0.75\n"
        assert _output(submitted, "stderr") == "to stderr\n"
    client = Client(grpc_stack.tracking_uri)
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"loss": 0.25}
    assert run.data.params == {"alpha": "0.75"}
    assert run.data.tags["mlflow.project.backend"] == "docker"
    assert run.data.tags["mlflow.project.env"] == "docker"
    assert run.data.tags["mlflow.docker.image.uri"].startswith("mlgrid-project-dockerized:")
    assert run.data.tags["mlflow.docker.image.id"].startswith("sha256:")
    note = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "dl"))
    assert Path(note).read_text() == "trained in /mlflow/projects/code"
    assert _containers_of(container_engine, submitted.run_id) == []


def test_an_image_as_is_gets_volumes_environment_and_the_run_variables(
    container_engine, grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("from the host")
    monkeypatch.setenv("COPIED_FROM_HOST", "copied")
    extra = (
        f"  volumes: ['{data}:/data:ro']\n"
        "  environment: [['NEW_VAR', 'new value'], 'COPIED_FROM_HOST', 'NOT_SET_ANYWHERE']\n"
    )
    command = (
        'cat /data/input.txt; echo; echo "$NEW_VAR|$COPIED_FROM_HOST|$NOT_SET_ANYWHERE"; '
        'echo "$MLFLOW_RUN_ID|$MLFLOW_EXPERIMENT_ID|$MLGRID_TRACKING_URI|$MLFLOW_TRACKING_URI"'
    )
    project = write(
        tmp_path / "p", {"MLproject": _mlproject(container_engine.tiny_image, command, extra)}
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted = _submit(svc, project)
        assert submitted.wait(timeout=120) is True, _output(submitted, "system")
        lines = _output(submitted).splitlines()
        system = _output(submitted, "system")
    assert lines[0] == "from the host"
    assert lines[1] == "new value|copied|"
    uri = grpc_stack.tracking_uri  # MLflow's client gets it in mlgrid's MLflow plugin scheme
    assert lines[2] == f"{submitted.run_id}|0|{uri}|{uri.replace('grpc://', 'mlgrid://')}"
    assert "NOT_SET_ANYWHERE is not set on the host; not passed" in system
    assert Client(grpc_stack.tracking_uri).get_run(submitted.run_id).info.status == "FINISHED"


def test_a_failing_command_fails_the_run_with_its_exit_code(
    container_engine, grpc_stack, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {"MLproject": _mlproject(container_engine.tiny_image, "echo failing >&2; exit 3")},
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted = _submit(svc, project)
        assert submitted.wait(timeout=120) is False
        assert submitted.get_status() == "FAILED"
        assert submitted.exit_code == 3
        assert _output(submitted, "stderr") == "failing\n"
    assert Client(grpc_stack.tracking_uri).get_run(submitted.run_id).info.status == "FAILED"
    assert _containers_of(container_engine, submitted.run_id) == []


@pytest.mark.parametrize("settle", [docker_run.LOG_SETTLE_SECONDS, 0.0])
def test_fast_output_reaches_the_runs_log_whole_in_order_and_once(
    container_engine, grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: float
) -> None:
    """60,000 lines as fast as a shell writes them. Podman's followed log (its logs endpoint)
    dropped runs of whole and partial lines at that rate, so the backend copies the attach
    stream instead. With no time to settle after the exit, the stream is cut as the wait
    returns and the rest is read from the container's log: either way every line once, in
    order, on both streams."""
    monkeypatch.setattr(docker_run, "LOG_SETTLE_SECONDS", settle)
    lines = 60_000
    command = f"i=0; while [ $i -lt {lines} ]; do echo line$i; i=$((i+1)); done; echo last >&2"
    project = write(tmp_path / "p", {"MLproject": _mlproject(container_engine.tiny_image, command)})
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        for _ in range(2):
            submitted = _submit(svc, project)
            assert submitted.wait(timeout=120) is True, _output(submitted, "system")
            assert _output(submitted) == "".join(f"line{i}\n" for i in range(lines))
            assert _output(submitted, "stderr") == "last\n"
            assert _containers_of(container_engine, submitted.run_id) == []


def test_logs_stream_while_the_container_runs_and_cancel_removes_it(
    container_engine, grpc_stack, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {"MLproject": _mlproject(container_engine.tiny_image, "echo started; sleep 300")},
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted = _submit(svc, project)
        seen = b""
        for chunk in submitted.logs(follow=True):
            if chunk.stream == "stdout":
                seen += chunk.data
            if b"started\n" in seen:
                break
        assert seen == b"started\n"
        assert submitted.get_status() == "RUNNING"
        assert len(_containers_of(container_engine, submitted.run_id)) == 1
        started = time.monotonic()
        submitted.cancel()
        assert submitted.wait(timeout=60) is False
        assert submitted.get_status() == "KILLED"
        assert time.monotonic() - started < 30
    assert Client(grpc_stack.tracking_uri).get_run(submitted.run_id).info.status == "KILLED"
    assert _containers_of(container_engine, submitted.run_id) == []


def test_an_image_that_does_not_exist_fails_the_run_naming_the_field(
    container_engine, grpc_stack, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p", {"MLproject": _mlproject("localhost/no-such-image:7", "echo never")}
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        submitted = _submit(svc, project)
        assert submitted.wait(timeout=120) is False
        assert submitted.get_status() == "FAILED"
        assert submitted.message.startswith(
            "docker_env.image 'localhost/no-such-image:7' does not exist"
        )
    assert Client(grpc_stack.tracking_uri).get_run(submitted.run_id).info.status == "FAILED"
    assert _containers_of(container_engine, submitted.run_id) == []


def _failed_runs(tracking_uri: str) -> list[object]:
    return Client(tracking_uri).search_runs(["0"], "attributes.status = 'FAILED'")


def test_a_volume_outside_the_allowed_roots_is_refused_and_the_run_failed(
    container_engine, grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_DOCKER_VOLUME_ROOTS", str(tmp_path / "allowed"))
    project = write(
        tmp_path / "p",
        {
            "MLproject": _mlproject(
                container_engine.tiny_image, "cat /x/passwd", "  volumes: ['/etc:/x']\n"
            )
        },
    )
    before = {r.info.run_id for r in _failed_runs(grpc_stack.tracking_uri)}
    with (
        own_projects_service(grpc_stack.config, tmp_path / "state") as svc,
        pytest.raises(InvalidParameterValue) as caught,
    ):
        _submit(svc, project)
    assert caught.value.message.startswith(
        "docker_env.volumes entry '/etc:/x': host path '/etc' is outside the directories"
    )
    (failed,) = [r for r in _failed_runs(grpc_stack.tracking_uri) if r.info.run_id not in before]
    assert failed.data.tags["mlflow.project.backend"] == "docker"


def test_an_unreachable_engine_is_refused_naming_docker_host(
    grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    project = write(tmp_path / "p", {"MLproject": _mlproject("anything:1", "echo never")})
    with (
        own_projects_service(grpc_stack.config, tmp_path / "state") as svc,
        pytest.raises(InvalidParameterValue) as caught,
    ):
        _submit(svc, project)
    assert caught.value.message.startswith(
        f"no container engine answers at DOCKER_HOST=unix://{tmp_path}/no-engine.sock"
    )


def test_a_project_without_docker_env_is_refused_before_any_run(grpc_stack, tmp_path: Path) -> None:
    project = write(tmp_path / "p", {"main.py": "print(1)\n"})
    with (
        own_projects_service(grpc_stack.config, tmp_path / "state") as svc,
        pytest.raises(InvalidParameterValue) as caught,
    ):
        _submit(svc, project, entry_point="main.py")
    assert caught.value.message.startswith(
        "backend 'docker' runs projects that declare docker_env in their MLproject"
    )


def _mlgrid_run(tracking_uri: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGRID_TRACKING_URI": tracking_uri}
    return subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _logging_project(directory: Path, image: str) -> Path:
    return write(
        directory,
        {
            "MLproject": _mlproject(image, "python log.py {n}").replace(
                "    command:", "    parameters: {n: float}\n    command:"
            ),
            "log.py": (
                "import sys, mlgrid\n"
                "with mlgrid.start_run():\n"
                "    mlgrid.log_metric('n', float(sys.argv[1]))\n"
                "    mlgrid.log_dict({'n': sys.argv[1]}, 'out/n.json')\n"
                "print('logged', sys.argv[1])\n"
            ),
        },
    )


def test_mlgrid_run_with_the_docker_backend_from_the_command_line(
    container_engine, grpc_stack, tmp_path: Path
) -> None:
    _logging_project(tmp_path / "proj", container_engine.python_image)
    result = _mlgrid_run(
        grpc_stack.tracking_uri, "proj", "-b", "docker", "--build-image", "-P", "n=4", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logged 4\n" in result.stdout
    (run,) = Client(grpc_stack.tracking_uri).search_runs(["0"], "params.n = '4'")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["n"] == 4.0


def test_a_local_store_is_mounted_so_what_the_run_logs_is_there_afterwards(
    container_engine, tmp_path: Path
) -> None:
    """Embedded mode (no server): the container opens the same SQLite store and artifact root."""
    (tmp_path / "store").mkdir()
    store = f"sqlite:///{tmp_path / 'store' / 'mlgrid.db'}"
    _logging_project(tmp_path / "proj", container_engine.python_image)
    result = _mlgrid_run(store, "proj", "-b", "docker", "--build-image", "-P", "n=7", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logged 7\n" in result.stdout
    client = Client(store)
    (run,) = client.search_runs(["0"], "params.n = '7'")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["n"] == 7.0
    path = client.download_artifacts(run.info.run_id, "out/n.json", str(tmp_path / "dl"))
    assert json.loads(Path(path).read_text()) == {"n": "7"}


def test_a_restarted_service_takes_over_the_containers_of_a_dead_one(
    container_engine, grpc_stack, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {"MLproject": _mlproject(container_engine.tiny_image, "echo before; sleep 4; echo after")},
    )
    state = tmp_path / "state"
    config = config_argument(grpc_stack.config)
    server = Path(__file__).with_name("serve_projects.py")
    service = subprocess.Popen(
        [sys.executable, str(server), config, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert service.stdout is not None
        transport = Transport(f"grpc://127.0.0.1:{int(service.stdout.readline())}")
        answer = transport.call(
            transport.projects.SubmitRun, pb.SubmitRunRequest(backend="docker", uri=str(project))
        )
        deadline = time.monotonic() + 60
        while [c.status for c in _containers_of(container_engine, answer.run_id)] != ["running"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        transport.close()
    finally:
        service.send_signal(signal.SIGKILL)  # no chance to clean up
        service.wait()
    assert len(_containers_of(container_engine, answer.run_id)) == 1  # the container goes on

    runner = create_runner(grpc_stack.config, state_dir=state)
    try:
        assert runner.reconcile(attempts=3, delay=0.2) == []  # taken over, not failed
        assert runner.wait(answer.run_id, timeout=60).status == "FINISHED"
        logs = b"".join(c.data for c in runner.logs(answer.run_id, follow=False))
        assert b"before\n" in logs and b"after\n" in logs
        assert runner.state.lease_of(answer.run_id) is None  # the ended run's lease is gone
    finally:
        runner.close()
    assert Client(grpc_stack.tracking_uri).get_run(answer.run_id).info.status == "FINISHED"
    assert _containers_of(container_engine, answer.run_id) == []
