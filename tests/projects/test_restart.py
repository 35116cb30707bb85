"""A projects service that dies leaves RUNNING runs behind; the next one marks them FAILED."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.projects.backend import OwnedHandle
from mlgrid.transport import Transport
from mlgrid_services.projects.app import create_runner
from mlgrid_services.projects.process import process_start_time
from mlgrid_services.projects.runner import FAILURE_TAG

from .helpers import write
from .serve_projects import config_argument
from .service import own_projects_service
from .test_runs import alive

SERVER = Path(__file__).with_name("serve_projects.py")


def test_runs_of_a_dead_service_are_failed_at_the_next_start(grpc_stack, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    project = write(
        tmp_path / "p",
        {
            "long.py": f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(300)\n"
        },
    )
    state = tmp_path / "state"
    config = config_argument(grpc_stack.config)
    service = subprocess.Popen(
        [sys.executable, str(SERVER), config, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert service.stdout is not None
        port = int(service.stdout.readline())
        transport = Transport(f"grpc://127.0.0.1:{port}")
        answer = transport.call(
            transport.projects.SubmitRun,
            pb.SubmitRunRequest(backend="local", uri=str(project), entry_point="long.py"),
        )
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pid_file.read_text())
        transport.close()
    finally:
        service.send_signal(signal.SIGKILL)  # no chance to clean up
        service.wait()
    client = Client(grpc_stack.tracking_uri)
    assert client.get_run(answer.run_id).info.status == "RUNNING"
    assert alive(child)  # the orphan is still running

    runner = create_runner(grpc_stack.config, state_dir=state)
    try:
        assert runner.reconcile(attempts=3, delay=0.2) == [answer.run_id]
        failed = client.get_run(answer.run_id)
        assert failed.info.status == "FAILED"
        assert "local process can only be supervised" in failed.data.tags[FAILURE_TAG]
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
        assert runner.state.lease_of(answer.run_id) is None
        # The lease of a live service (this very process) is left alone.
        runner.state.record(OwnedHandle("f" * 32, "local"))
        other = create_runner(grpc_stack.config, state_dir=state)
        try:
            assert other.reconcile(attempts=1) == []
        finally:
            other.close()
        lease = runner.state.lease_of("f" * 32)
        assert lease is not None and lease.owner == runner.state.instance
    finally:
        runner.close()


def test_stopping_the_service_ends_its_runs_failed(grpc_stack, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    project = write(
        tmp_path / "p",
        {
            "long.py": f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(300)\n"
        },
    )
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        answer = svc.transport.call(
            svc.transport.projects.SubmitRun,
            pb.SubmitRunRequest(backend="local", uri=str(project), entry_point="long.py"),
        )
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # Nobody would supervise the run any more: it is stopped and marked FAILED, not left RUNNING.
    assert Client(grpc_stack.tracking_uri).get_run(answer.run_id).info.status == "FAILED"
    assert not alive(int(pid_file.read_text()))
    with own_projects_service(grpc_stack.config, tmp_path / "state") as svc:
        assert svc.runner.state.lease_of(answer.run_id) is None


def test_runs_recorded_before_leases_are_taken_over_after_an_upgrade(
    grpc_stack, tmp_path: Path
) -> None:
    """A state directory of a service before leases holds one JSON record per active run; the
    upgraded service turns them into leases and takes the runs over (a local process: killed,
    its run FAILED)."""
    client = Client(grpc_stack.tracking_uri)
    run_id = client.create_run(client.create_experiment("before-leases")).info.run_id
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    state = tmp_path / "state"
    state.mkdir()
    record = {
        "run_id": run_id,
        "store_uri": grpc_stack.config.backend_store_uri,
        "owner_pid": 2**22 - 1,  # gone
        "owner_start": "1",
        "owner_instance": "old",
        "backend": "local",
        "details": {"pid": orphan.pid, "start": process_start_time(orphan.pid)},
    }
    (state / f"{run_id}.json").write_text(json.dumps(record))
    (state / "other.json").write_text(json.dumps({**record, "store_uri": "sqlite:///other.db"}))
    runner = create_runner(grpc_stack.config, state_dir=state)
    try:
        assert runner.reconcile(attempts=3, delay=0.2) == [run_id]
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert client.get_run(run_id).info.status == "FAILED"
        assert runner.state.lease_of(run_id) is None
        # Records of another tracking store are not this service's to take.
        assert sorted(p.name for p in state.glob("*.json")) == ["other.json"]
    finally:
        runner.close()
        if orphan.poll() is None:
            orphan.kill()
