"""Local project runs execute as an unprivileged user with kernel and supervisor limits: a
memory hog, a CPU hog, a sleeper past the wall-clock limit and a big file writer are stopped,
and the run is FAILED with a message naming the setting that stopped it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.projects.submitted import RemoteSubmittedRun
from tests.projects.helpers import write
from tests.projects.service import own_projects_service

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="dropping to the run user needs a service running as root"
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the run user can enter (pytest's tmp_path is root's alone), for projects."""
    path = Path(tempfile.mkdtemp(prefix="mlgrid-limits-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
    monkeypatch.delenv("MLGRID_PROJECTS_RUN_USER", raising=False)  # the default: nobody


class Finished:
    """What a user sees of a run once it ended."""

    def __init__(self, grpc_stack, submitted: RemoteSubmittedRun) -> None:
        self.status = submitted.get_status()
        self.message = submitted.message
        self.output = b"".join(c.data for c in submitted.logs()).decode(errors="replace")
        self.tracking_status = Client(grpc_stack.tracking_uri).get_run(submitted.run_id).info.status


def run_script(grpc_stack, state: Path, project_dir: Path, script: str) -> Finished:
    project = write(
        project_dir,
        {
            # The system's Python: the service's may live where the run user cannot go.
            "MLproject": "name: limited\n"
            "entry_points: {main: {command: '/usr/bin/python3 main.py'}}\n",
            "main.py": script,
        },
    )
    project.chmod(0o755)
    with own_projects_service(grpc_stack.config, state) as svc:
        answer = svc.transport.call(
            svc.transport.projects.SubmitRun,
            pb.SubmitRunRequest(backend="local", uri=str(project), env_manager="local"),
        )
        submitted = RemoteSubmittedRun(svc.transport, "local", answer.run_id)
        submitted.wait(timeout=120)
        return Finished(grpc_stack, submitted)


def assert_failed_naming(run: Finished, setting: str) -> None:
    assert run.status == "FAILED", run.output
    assert setting in run.message, (run.message, run.output)
    assert run.tracking_status == "FAILED"


def test_a_run_executes_as_nobody_and_cannot_raise_its_limits(
    grpc_stack, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES", str(2 * 1024**3))
    submitted = run_script(
        grpc_stack,
        tmp_path / "state",
        shared_dir / "p",
        """
        import os, resource
        print("uid", os.getuid(), os.getgid(), os.getgroups())
        open("written-here", "w").write("the working copy is the run's")
        try:
            open("/root/x", "w")
        except PermissionError:
            print("root's home: refused")
        try:
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
        except ValueError:
            print("raising the limit: refused")
        """,
    )
    assert submitted.status == "FINISHED", submitted.output
    output = submitted.output
    assert "uid 65534 65534 []" in output
    assert "root's home: refused" in output and "raising the limit: refused" in output
    assert "running as nobody" in output


def test_a_memory_hog_is_stopped_by_the_memory_limit(
    grpc_stack, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES", str(1024**3))
    submitted = run_script(
        grpc_stack, tmp_path / "state", shared_dir / "p", "hog = bytearray(4 * 1024**3)\n"
    )
    assert_failed_naming(submitted, "MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES")


def test_a_cpu_hog_is_killed_at_the_cpu_time_limit(
    grpc_stack, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_MAX_CPU_SECONDS", "1")
    submitted = run_script(grpc_stack, tmp_path / "state", shared_dir / "p", "while True: pass\n")
    assert_failed_naming(submitted, "MLGRID_PROJECTS_RUN_MAX_CPU_SECONDS")


def test_a_sleeper_is_stopped_at_the_wall_clock_limit(
    grpc_stack, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_MAX_SECONDS", "2")
    submitted = run_script(
        grpc_stack, tmp_path / "state", shared_dir / "p", "import time\ntime.sleep(120)\n"
    )
    assert_failed_naming(submitted, "MLGRID_PROJECTS_RUN_MAX_SECONDS")


@pytest.mark.parametrize(
    "script",
    [
        # Python ignores SIGXFSZ: its write fails with EFBIG at the per-file limit.
        "with open('big', 'wb') as f:\n    f.write(b'x' * (8 * 1024**2))\n",
        # A shell tool is killed by SIGXFSZ.
        "import subprocess\nsubprocess.run('head -c 8388608 /dev/zero > big', shell=True, check=True)\n",
        # Many files under the per-file limit fill the working copy: the supervisor stops it.
        "import time\nfor i in range(64):\n    open(f'f{i}', 'wb').write(b'x' * 512 * 1024)\n"
        "time.sleep(30)\n",
    ],
    ids=["python-writer", "shell-writer", "many-files"],
)
def test_a_big_file_writer_is_stopped_by_the_disk_limit(
    grpc_stack, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_MAX_DISK_BYTES", str(4 * 1024**2))
    submitted = run_script(grpc_stack, tmp_path / "state", shared_dir / "p", script)
    assert_failed_naming(submitted, "MLGRID_PROJECTS_RUN_MAX_DISK_BYTES")


def test_a_run_user_who_cannot_reach_the_project_fails_the_run_naming_the_settings(
    grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The working copy goes under a directory only root can enter.
    private = tmp_path / "work"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("MLGRID_PROJECTS_WORK_DIR", str(private))
    submitted = run_script(grpc_stack, tmp_path / "state", tmp_path / "p", "print('hi')\n")
    assert_failed_naming(submitted, "MLGRID_PROJECTS_WORK_DIR")
    assert "'nobody'" in submitted.message and "MLGRID_PROJECTS_RUN_USER" in submitted.message


def test_an_unknown_run_user_fails_the_run_naming_the_setting(
    grpc_stack, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_USER", "no-such-user-here")
    submitted = run_script(grpc_stack, tmp_path / "state", shared_dir / "p", "print('hi')\n")
    assert_failed_naming(submitted, "MLGRID_PROJECTS_RUN_USER")
