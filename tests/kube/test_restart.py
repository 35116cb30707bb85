"""A projects service that dies leaves its Jobs running in the cluster; the next one adopts them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.transport import Transport
from mlgrid_services.projects.app import create_runner
from mlgrid_services.projects.kubernetes.submitted import LOG_ARTIFACT
from tests.projects.serve_projects import config_argument

from .conftest import Cluster, project
from .test_backend import TEMPLATE

SERVER = Path(__file__).parents[1] / "projects" / "serve_projects.py"


def test_a_job_outlives_a_killed_service_and_the_next_one_sees_it_to_the_end(
    grpc_stack, cluster: Cluster, tmp_path: Path
) -> None:
    project_dir = project(tmp_path / "proj", cluster.python_image)
    state = tmp_path / "state"
    config = config_argument(grpc_stack.config)
    service = subprocess.Popen(
        [sys.executable, str(SERVER), config, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert service.stdout is not None
        transport = Transport(f"grpc://127.0.0.1:{int(service.stdout.readline())}")
        answer = transport.call(
            transport.projects.SubmitRun,
            pb.SubmitRunRequest(
                backend="kubernetes",
                uri=str(project_dir),
                parameters={"sleep": "6"},
                backend_config_json=json.dumps(
                    {
                        "repository-uri": f"{cluster.registry}/kube-demo",
                        "kube-job-template": TEMPLATE,
                    }
                ),
            ),
        )
        deadline = time.monotonic() + 300
        while not [
            p
            for p in cluster.api.store.list("pods", None, "", "")[0]
            if p["status"]["phase"] == "Running"
        ]:
            assert time.monotonic() < deadline, "the Job's pod never ran"
            time.sleep(0.1)
        transport.close()
    finally:
        service.send_signal(signal.SIGKILL)  # no chance to clean up
        service.wait()
    client = Client(grpc_stack.tracking_uri)
    assert client.get_run(answer.run_id).info.status == "RUNNING"
    assert cluster.api.store.list("jobs", None, "", "")[0]  # still running in the cluster

    runner = create_runner(grpc_stack.config, state_dir=state)
    try:
        assert runner.reconcile(attempts=3, delay=0.2) == []  # adopted, not failed
        answer_after = runner.wait(answer.run_id, 120)
        assert answer_after.status == "FINISHED"
        output = b"".join(c.data for c in runner.logs(answer.run_id, follow=False)).decode()
        assert "adopted Job kube-demo-" in output and "done" in output
        assert runner.state.lease_of(answer.run_id) is None  # the ended run's lease is gone
    finally:
        runner.close()
    run = client.get_run(answer.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"doubled": 1.0}
    kept = client.download_artifacts(answer.run_id, LOG_ARTIFACT, str(tmp_path / "dl"))
    assert "done" in Path(kept).read_text()
