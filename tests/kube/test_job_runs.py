"""A run's Job, watched through the real ``kubernetes`` client: status, live output, cancel,
an image that cannot be pulled, adoption after a restart, and an expired watch.

The Jobs run as real containers on the engine (tests/fixtures/kube_pods.py); the image is the
Python base image, so no project image is built here (test_backend.py builds them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid_services.projects.kubernetes import watching
from mlgrid_services.projects.kubernetes.cluster import connect
from mlgrid_services.projects.kubernetes.submitted import (
    LOG_ARTIFACT,
    JobHandle,
    KubernetesSubmittedRun,
    RunHooks,
)
from mlgrid_services.projects.kubernetes.template import JobRequest, parse_template, render_job
from mlgrid_services.projects.logbuffer import LogBuffer

from .conftest import Cluster

TEMPLATE = """
apiVersion: batch/v1
kind: Job
metadata: {name: placeholder}
spec:
  backoffLimit: 0
  template:
    spec:
      containers: [{name: placeholder, image: placeholder}]
      restartPolicy: Never
"""


class Hooks:
    """What the service would do, recorded."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, int]] = []
        self.records: dict[str, JobHandle] = {}
        self.forgotten: list[str] = []
        self.artifacts: dict[str, bytes] = {}

    def hooks(self) -> RunHooks:
        return RunHooks(
            end_run=lambda run_id, status, store: self.ended.append((run_id, status)),
            record=lambda run_id, handle: self.records.__setitem__(run_id, handle),
            forget=self.forgotten.append,
            save_artifact=lambda run_id, store, path, data: self.artifacts.__setitem__(path, data),
        )


def start_run(
    image: str, command: str, run_id: str = "a" * 32, template: str = TEMPLATE
) -> tuple[KubernetesSubmittedRun, Hooks]:
    hooks = Hooks()
    cluster = connect(None)
    output = LogBuffer()

    def launch(run: KubernetesSubmittedRun) -> JobHandle:
        job = render_job(
            parse_template(template),
            JobRequest(
                project_name="demo",
                run_id=run_id,
                experiment_id="0",
                image=image,
                command=command,
                tracking_uri="grpc://127.0.0.1:1",
            ),
        )
        from kubernetes import client

        client.BatchV1Api(cluster.api).create_namespaced_job(cluster.namespace, job)
        return JobHandle(None, cluster.namespace, job["metadata"]["name"], "demo")

    run = KubernetesSubmittedRun(run_id, cluster, hooks.hooks(), output, launch=launch)
    return run.start(), hooks


def output_of(run: KubernetesSubmittedRun) -> str:
    return b"".join(c.data for c in run.logs(follow=False)).decode()


def wait_for(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_job_that_succeeds_finishes_the_run_with_its_output_streamed_and_kept(
    cluster: Cluster, python_image: str
) -> None:
    run, hooks = start_run(
        python_image, "echo first; sleep 2; echo MLFLOW_RUN_ID=$MLFLOW_RUN_ID; echo oops >&2"
    )
    assert run.get_status() == "SCHEDULED"
    seen: list[str] = []
    statuses: set[str] = set()

    def follow() -> None:
        for chunk in run.logs(follow=True):
            statuses.add(run.get_status())
            seen.append(chunk.data.decode())

    reader = threading.Thread(target=follow)
    reader.start()
    assert run.wait(120) is True
    reader.join(10)
    text = "".join(seen)
    assert "first\n" in text and f"MLFLOW_RUN_ID={'a' * 32}\n" in text and "oops\n" in text
    assert "RUNNING" in statuses
    assert run.get_status() == "FINISHED" and run.exit_code == 0
    assert hooks.ended == [("a" * 32, tracking_pb2.RUN_STATUS_FINISHED)]
    assert hooks.forgotten == ["a" * 32]
    kept = hooks.artifacts[LOG_ARTIFACT].decode()
    assert "first\n" in kept and "FINISHED" in kept
    assert hooks.records["a" * 32].job_name.startswith("demo-")


def test_a_failing_job_fails_the_run_with_the_exit_code(
    cluster: Cluster, python_image: str
) -> None:
    run, hooks = start_run(python_image, "echo about to fail; exit 3")
    assert run.wait(120) is False
    assert run.get_status() == "FAILED" and run.exit_code == 3
    assert "exit code 3" in run.message and "BackoffLimitExceeded" in run.message
    assert hooks.ended == [("a" * 32, tracking_pb2.RUN_STATUS_FAILED)]
    assert "about to fail" in hooks.artifacts[LOG_ARTIFACT].decode()


def test_cancel_deletes_the_job_and_its_pods_and_kills_the_run(
    cluster: Cluster, python_image: str
) -> None:
    run, hooks = start_run(python_image, "echo started; sleep 300")
    wait_for(lambda: "started" in output_of(run))
    assert run.get_status() == "RUNNING"
    run.cancel()
    assert run.get_status() == "KILLED"
    assert hooks.ended == [("a" * 32, tracking_pb2.RUN_STATUS_KILLED)]
    store = cluster.api.store
    assert store.list("jobs", None, "", "")[0] == []
    assert store.list("pods", None, "", "")[0] == []
    # Nothing left running on the engine either.
    assert not [
        c
        for c in cluster.pods.engine.containers.list()
        if c.labels.get("mlgrid-test-kube") == cluster.pods.instance
    ]
    requests = cluster.api.requests
    assert any(
        r.startswith("DELETE /apis/batch/v1/namespaces/default/jobs/demo-") for r in requests
    )


def test_an_image_that_cannot_be_pulled_fails_the_run_and_leaves_nothing(
    cluster: Cluster,
) -> None:
    run, hooks = start_run("127.0.0.1:9/missing/image@sha256:" + "0" * 64, "true")
    assert run.wait(120) is False
    assert run.get_status() == "FAILED"
    assert "ImagePullBackOff" in run.message
    assert hooks.ended == [("a" * 32, tracking_pb2.RUN_STATUS_FAILED)]
    assert cluster.api.store.list("jobs", None, "", "")[0] == []
    assert cluster.api.store.list("pods", None, "", "")[0] == []


def test_a_restarted_service_adopts_a_job_still_running(
    cluster: Cluster, python_image: str
) -> None:
    run, hooks = start_run(python_image, "echo before; sleep 2; echo after")
    wait_for(lambda: "before" in output_of(run))
    run.abort("the projects service stopped")  # the service stops: the Job goes on
    assert hooks.ended == [] and hooks.forgotten == []
    handle = hooks.records["a" * 32]
    assert cluster.api.store.list("jobs", None, "", "")[0]

    adopted = KubernetesSubmittedRun(
        "a" * 32, connect(None), hooks.hooks(), LogBuffer(), handle=handle
    ).start()
    assert adopted.wait(120) is True
    assert "after" in output_of(adopted)
    assert hooks.ended == [("a" * 32, tracking_pb2.RUN_STATUS_FINISHED)]


def test_a_job_that_ended_while_the_service_was_down_ends_the_run_on_adoption(
    cluster: Cluster, python_image: str
) -> None:
    run, hooks = start_run(python_image, "echo quick; exit 4")
    wait_for(lambda: hooks.records)
    run.abort("the projects service stopped")
    handle = hooks.records["a" * 32]
    wait_for(
        lambda: cluster.api.store.get("jobs", "default", handle.job_name)["status"].get(
            "conditions"
        )
    )
    adopted = KubernetesSubmittedRun(
        "a" * 32, connect(None), hooks.hooks(), LogBuffer(), handle=handle
    ).start()
    assert adopted.wait(60) is False
    assert adopted.get_status() == "FAILED" and adopted.exit_code == 4
    assert "quick" in hooks.artifacts[LOG_ARTIFACT].decode()


def test_a_job_deleted_by_someone_else_fails_the_run(cluster: Cluster, python_image: str) -> None:
    run, hooks = start_run(python_image, "sleep 300")
    handle = wait_for(lambda: hooks.records.get("a" * 32))
    cluster.api.delete_job("default", handle.job_name, "Background")
    assert run.wait(60) is False
    assert "was deleted" in run.message


def test_an_expired_watch_lists_again_and_still_sees_the_end(
    cluster: Cluster, python_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watching, "WATCH_SECONDS", 1)
    run, hooks = start_run(python_image, "sleep 3; echo done")
    wait_for(lambda: hooks.records)
    cluster.api.store.compact()  # every resource version seen so far is now too old
    assert run.wait(120) is True
    assert "done" in output_of(run)
    lists = [r for r in cluster.api.requests if r == "GET /apis/batch/v1/namespaces/default/jobs"]
    assert len(lists) >= 3  # preflight-free here: the first list, watches, and the re-list


def test_the_api_server_refuses_a_client_without_the_token(cluster: Cluster) -> None:
    from kubernetes import client, config

    wrong = cluster.kubeconfig.with_name("wrong-token")
    wrong.write_text(cluster.kubeconfig.read_text().replace(cluster.api.token, "wrong"))
    api = config.new_client_from_config(config_file=str(wrong), persist_config=False)
    with pytest.raises(ApiException) as caught:
        client.BatchV1Api(api).list_namespaced_job("default")
    assert caught.value.status == 401
