"""Project runs end to end through the gateway: real child processes logging to the stack."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import pytest

from mlgrid import projects
from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.projects import ExecutionException
from mlgrid.projects.submitted import RemoteSubmittedRun
from mlgrid.transport import Transport

from .helpers import write
from .service import own_projects_service

HOSTILE = ["; rm -rf /", "$(touch pwned)", 'it\'s "quoted" `x`', "a b\nc", "--flag"]


@pytest.fixture
def stack_uri(grpc_stack, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLGRID_TRACKING_URI", grpc_stack.tracking_uri)
    for name in ("MLGRID_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_ID", "MLGRID_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    return str(grpc_stack.tracking_uri)


def output(submitted: RemoteSubmittedRun, stream: str = "stdout") -> str:
    return b"".join(c.data for c in submitted.logs() if c.stream == stream).decode()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has already exited


def test_run_logs_params_metrics_and_tags_to_the_same_store(
    stack_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data.csv").write_text("x\n1\n")
    project = write(
        tmp_path / "proj",
        {
            "MLproject": """
                name: e2e
                entry_points:
                  main:
                    parameters:
                      alpha: {type: float, default: 0.25}
                      data: path
                    command: "python train.py --alpha {alpha} --data {data}"
            """,
            "train.py": """
                import json, os, sys
                names = ["RUN_ID", "TRACKING_URI", "EXPERIMENT_ID"]
                seen = {p + "_" + n: os.environ[p + "_" + n]
                        for p in ("MLFLOW", "MLGRID") for n in names}
                seen["store"] = os.environ.get("MLGRID_BACKEND_STORE_URI")
                import mlgrid
                with mlgrid.start_run() as run:
                    mlgrid.log_metric("rows", len(open(sys.argv[4]).read().split()) - 1)
                    mlgrid.log_param("seen_run", run.info.run_id)
                print(json.dumps(seen))
            """,
        },
    )
    monkeypatch.chdir(tmp_path)  # "data.csv" is relative to the caller's directory
    # The service's own settings (database credentials) never reach the run.
    monkeypatch.setenv("MLGRID_BACKEND_STORE_URI", "postgresql://user:secret@db/mlgrid")
    submitted = projects.run(
        str(project),
        parameters={"data": "data.csv", "epochs": 5},
        experiment_name="projects-e2e",
        run_name="e2e-run",
    )
    assert submitted.get_status() == "FINISHED"
    client = Client(stack_uri)
    run = client.get_run(submitted.run_id)
    experiment = client.get_experiment_by_name("projects-e2e")
    assert experiment is not None and run.info.experiment_id == experiment.experiment_id
    assert run.info.status == "FINISHED"
    assert run.data.params == {
        "alpha": "0.25",
        "data": str(tmp_path / "data.csv"),
        "epochs": "5",
        "seen_run": submitted.run_id,
    }
    assert run.data.metrics == {"rows": 1.0}
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.source.name"] == str(project)
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.project.backend"] == "local"
    assert tags["mlflow.project.env"] == "local"
    assert tags["mlflow.runName"] == "e2e-run"
    env = json.loads(output(submitted).strip().splitlines()[-1])
    assert env.pop("store") is None
    for prefix in ("MLFLOW", "MLGRID"):
        assert env[f"{prefix}_RUN_ID"] == submitted.run_id
        assert env[f"{prefix}_EXPERIMENT_ID"] == experiment.experiment_id
    # The SDK's name for the gateway, and the mlflow client's (mlgrid's MLflow plugin).
    assert env["MLGRID_TRACKING_URI"] == stack_uri
    assert env["MLFLOW_TRACKING_URI"] == stack_uri.replace("grpc://", "mlgrid://", 1)


def test_hostile_parameters_reach_the_child_literally(stack_uri: str, tmp_path: Path) -> None:
    project = write(
        tmp_path / "proj",
        {
            "MLproject": """
                name: quoting
                entry_points:
                  main:
                    parameters: {a: string, b: string}
                    command: "python argv.py {a} --b={b}"
            """,
            "argv.py": "import json, sys\nprint(json.dumps(sys.argv[1:]))\n",
        },
    )
    for value in HOSTILE:
        submitted = projects.run(str(project), parameters={"a": value, "b": value, "c d": value})
        argv = json.loads(output(submitted).strip().splitlines()[-1])
        assert argv == [value, f"--b={value}", "--c d", value]
        params = Client(stack_uri).get_run(submitted.run_id).data.params
        assert params == {"a": value, "b": value, "c d": value}
    assert not list(tmp_path.rglob("pwned"))


def test_failing_run_raises_and_is_marked_failed(stack_uri: str, tmp_path: Path) -> None:
    project = write(
        tmp_path / "p", {"fail.py": "import sys\nprint('about to fail')\nsys.exit(3)\n"}
    )
    with pytest.raises(ExecutionException) as info:
        projects.run(str(project), entry_point="fail.py")
    assert "exit code 3" in str(info.value)
    assert info.value.run_id is not None
    run = Client(stack_uri).get_run(info.value.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["mlflow.project.entryPoint"] == "fail.py"


def test_a_run_that_ended_itself_keeps_its_status(stack_uri: str, tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        {"main.py": "import mlgrid\nmlgrid.start_run()\nmlgrid.end_run(status='KILLED')\n"},
    )
    submitted = projects.run(str(project), entry_point="main.py")
    assert submitted.wait() is True  # the process succeeded
    assert Client(stack_uri).get_run(submitted.run_id).info.status == "KILLED"


def test_asynchronous_run_returns_at_once_and_survives_its_client(
    grpc_stack, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {"slow.py": "import time\nprint('start', flush=True)\ntime.sleep(1.5)\nprint('end')\n"},
    )
    # A client of its own, which disconnects right after submitting and while following.
    transport = Transport(grpc_stack.tracking_uri)
    answer = transport.call(
        transport.projects.SubmitRun,
        pb.SubmitRunRequest(backend="local", uri=str(project), entry_point="slow.py"),
    )
    first = RemoteSubmittedRun(transport, "local", answer.run_id)
    assert first.get_status() in ("SCHEDULED", "RUNNING")
    for chunk in first.logs(follow=True):
        if b"start" in chunk.data:
            break
    transport.close()
    other = Transport(grpc_stack.tracking_uri)
    try:
        second = RemoteSubmittedRun(other, "local", answer.run_id)
        assert second.wait(timeout=30) is True
        assert output(second) == "start\nend\n"
    finally:
        other.close()


def test_logs_stream_live_before_the_process_ends(stack_uri: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    project = write(
        tmp_path / "p",
        {
            "live.py": f"""
                import os, sys, time
                print("first line")
                print("to stderr", file=sys.stderr)
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.05)
                print("second line")
            """
        },
    )
    submitted = projects.run(str(project), entry_point="live.py", synchronous=False)
    seen: list[tuple[str, bytes]] = []
    for chunk in submitted.logs(follow=True):
        seen.append((chunk.stream, chunk.data))
        if b"first line" in chunk.data:
            # The process is still blocked on the gate: this line was streamed live.
            assert submitted.get_status() == "RUNNING"
            gate.write_text("open")
    streams = {s: b"".join(d for st, d in seen if st == s).decode() for s, _ in seen}
    assert streams["stdout"] == "first line\nsecond line\n"
    assert streams["stderr"] == "to stderr\n"
    assert "FINISHED" in streams["system"]
    assert submitted.wait() is True


def test_git_project_version_and_tags(stack_uri: str, git_repo: dict[str, object]) -> None:
    repo = git_repo["path"]
    assert isinstance(repo, Path)
    submitted = projects.run(f"{repo.as_uri()}#proj", version="feature")
    assert output(submitted) == "version=v2\n"
    tags = Client(stack_uri).get_run(submitted.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == git_repo["v2"]
    assert tags["mlflow.source.git.repoURL"] == repo.as_uri()
    assert tags["mlflow.source.git.branch"] == "feature"
    assert tags["mlflow.source.name"] == f"{repo.as_uri()}#proj"


def test_bad_submissions_are_refused_before_a_run_exists(stack_uri: str, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad", {"MLproject": "name: bad\nentry_points: {main: {}}\n"})
    with pytest.raises(InvalidParameterValue, match=r"entry_points\.main\.command' is missing"):
        projects.run(str(bad), experiment_name="never-created")
    needs = write(
        tmp_path / "needs",
        {
            "MLproject": "entry_points: {main: {parameters: {alpha: float}, command: 'echo {alpha}'}}\n"
        },
    )
    with pytest.raises(InvalidParameterValue, match=r"needs parameter\(s\) alpha"):
        projects.run(str(needs), experiment_name="never-created")
    with pytest.raises(InvalidParameterValue, match="must be a number"):
        projects.run(str(needs), parameters={"alpha": "fast"}, experiment_name="never-created")
    with pytest.raises(InvalidParameterValue, match=r"known backends: .*local"):
        projects.run(str(needs), backend="nope", experiment_name="never-created")
    assert Client(stack_uri).get_experiment_by_name("never-created") is None
    transport = Transport(stack_uri)
    try:
        with pytest.raises(ResourceDoesNotExist):
            list(RemoteSubmittedRun(transport, "local", "0" * 32).logs())
    finally:
        transport.close()


def test_virtualenv_project_runs_in_its_cached_environment(
    stack_uri: str, env_root: Path, tmp_path: Path
) -> None:
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    project = write(
        tmp_path / "venv-proj",
        {
            "MLproject": "name: v\npython_env: python_env.yaml\n"
            "entry_points: {main: {command: 'python -c \"import sys; print(sys.prefix)\"'}}\n",
            "python_env.yaml": f'python: "{minor}"\ndependencies: []\n',
        },
    )
    prefixes = []
    for _ in range(2):
        submitted = projects.run(str(project))
        prefixes.append(output(submitted).strip())
        assert Client(stack_uri).get_run(submitted.run_id).data.tags["mlflow.project.env"] == (
            "virtualenv"
        )
    assert prefixes[0] == prefixes[1]
    assert Path(prefixes[0]).parent == env_root
    assert "reusing virtualenv" in output(submitted, "system")


def test_cancel_kills_the_whole_process_group(grpc_stack, tmp_path: Path) -> None:
    pids = tmp_path / "pids.json"
    project = write(
        tmp_path / "p",
        {
            # Leader and grandchild both ignore SIGTERM: only the SIGKILL after the grace ends them.
            "long.py": f"""
                import json, signal, subprocess, sys, time
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                child = subprocess.Popen([sys.executable, "-c",
                    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
                with open({str(pids)!r}, "w") as f:
                    json.dump([__import__("os").getpid(), child.pid], f)
                time.sleep(300)
            """
        },
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state", kill_grace=1.0) as svc:
        answer = svc.transport.call(
            svc.transport.projects.SubmitRun,
            pb.SubmitRunRequest(backend="local", uri=str(project), entry_point="long.py"),
        )
        submitted = RemoteSubmittedRun(svc.transport, "local", answer.run_id)
        deadline = time.monotonic() + 30
        while not pids.exists() or not pids.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        leader, grandchild = json.loads(pids.read_text())
        assert alive(leader) and alive(grandchild)
        assert svc.runner.state.lease_of(answer.run_id) is not None  # leased while running
        started = time.monotonic()
        submitted.cancel()
        assert submitted.get_status() == "KILLED"
        assert time.monotonic() - started < 15
        assert not alive(leader) and not alive(grandchild)
        assert submitted.wait() is False
        assert Client(grpc_stack.tracking_uri).get_run(answer.run_id).info.status == "KILLED"
        assert "cancel requested" in output(submitted, "system")
        assert svc.runner.state.lease_of(answer.run_id) is None  # forgotten once ended


def test_zip_archive_project_with_subdirectory(stack_uri: str, tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "inner/MLproject", "name: zipped\nentry_points: {main: {command: 'bash hi.sh'}}\n"
        )
        zf.writestr("inner/hi.sh", "echo from the zip\n")
    submitted = projects.run(f"{archive}#inner")
    assert output(submitted) == "from the zip\n"
    tags = Client(stack_uri).get_run(submitted.run_id).data.tags
    assert tags["mlflow.source.name"] == f"{archive}#inner"


def test_cancel_while_the_environment_is_being_built(
    grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import threading

    # An index that accepts pip's connection and never answers: the build hangs until cancelled.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                held.append(conn)
                connected.set()

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    monkeypatch.setenv("MLGRID_ENV_ROOT", str(tmp_path / "envs"))
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    project = write(
        tmp_path / "p",
        {
            "MLproject": "name: slow-env\npython_env: python_env.yaml\n"
            "entry_points: {main: {command: 'python -c pass'}}\n",
            "python_env.yaml": f'python: "{minor}"\n'
            f"dependencies: ['stalled @ http://127.0.0.1:{port}/stalled-1.0-py3-none-any.whl']\n",
        },
    )
    try:
        with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
            answer = svc.transport.call(
                svc.transport.projects.SubmitRun,
                pb.SubmitRunRequest(backend="local", uri=str(project)),
            )
            submitted = RemoteSubmittedRun(svc.transport, "local", answer.run_id)
            assert connected.wait(60), "pip never reached the index"
            assert submitted.get_status() == "SCHEDULED"
            started = time.monotonic()
            submitted.cancel()
            assert submitted.wait(timeout=30) is False
            assert time.monotonic() - started < 15
            assert submitted.get_status() == "KILLED"
            assert "install --disable-pip-version-check" in output(submitted, "system")
        run = Client(grpc_stack.tracking_uri).get_run(answer.run_id)
        assert run.info.status == "KILLED"
        # The half-built environment was thrown away, not published to the cache.
        assert [p.name for p in (tmp_path / "envs").iterdir() if not p.name.endswith(".lock")] == []
    finally:
        listener.close()
        for conn in held:
            conn.close()
