"""Auth on, ``-b kubernetes``: the run's token reaches its pod through a Secret of the run's
own, never through the Job's spec; the Secret belongs to the Job and is gone when the run ends,
as is the token. Real stack with auth, real image build and push, the local API server, the
pod as a real container logging into mlgrid with the token."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid import projects
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.client import Client
from mlgrid.protocol import AUTHORIZATION_METADATA
from tests.auth.conftest import CACHE_SECONDS, AuthStack, code_of, start_auth_stack
from tests.fixtures.kube_api import ApiError

from .conftest import Cluster, project
from .test_backend import backend_config, use_tracking_uri

USER = ("kube-runner", "kube-runner-password")


@pytest.fixture
def auth_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthStack]:
    """A stack with auth on, and this process (the submitter) signed in as USER."""
    stack = start_auth_stack(tmp_path / "stack")
    try:
        stack.create_user(*USER)
        use_tracking_uri(stack.stack.tracking_uri, monkeypatch)
        monkeypatch.setenv("MLGRID_TRACKING_USERNAME", USER[0])
        monkeypatch.setenv("MLGRID_TRACKING_PASSWORD", USER[1])
        for name in ("MLGRID_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_ID", "MLGRID_EXPERIMENT_NAME"):
            monkeypatch.delenv(name, raising=False)
        yield stack
    finally:
        stack.close()


def _wait_for(condition, timeout: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_the_run_token_is_in_a_secret_the_job_owns_and_both_go_when_the_run_ends(
    auth_stack: AuthStack, cluster: Cluster, registry: str, python_image: str, tmp_path: Path
) -> None:
    experiment_id = Client().create_experiment("kube-secret-runs")
    submitted = projects.run(
        str(project(tmp_path / "proj", python_image)),
        parameters={"alpha": 0.25, "sleep": 3},
        experiment_id=experiment_id,
        backend="kubernetes",
        backend_config=str(backend_config(tmp_path, registry)),
        synchronous=False,
    )
    store = cluster.api.store

    def created(resource: str) -> dict | None:
        return next((e[3] for e in store.events if e[1] == resource and e[2] == "ADDED"), None)

    job = _wait_for(lambda: created("jobs"))
    secret = store.get("secrets", "default", f"{job['metadata']['name']}-token")
    # The Secret holds the token under both names, belongs to the Job, names the run.
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    token = data["MLGRID_TRACKING_TOKEN"]
    assert token.startswith("mlg_") and data == {
        "MLGRID_TRACKING_TOKEN": token,
        "MLFLOW_TRACKING_TOKEN": token,
    }
    assert secret["metadata"]["labels"]["mlgrid.org/run-id"] == submitted.run_id
    _wait_for(
        lambda: store.get("secrets", "default", secret["metadata"]["name"])["metadata"].get(
            "ownerReferences"
        )
    )
    owners = store.get("secrets", "default", secret["metadata"]["name"])["metadata"][
        "ownerReferences"
    ]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
        ("Job", job["metadata"]["name"], job["metadata"]["uid"])
    ]
    # The Job (and its pod) only reference it: the token is nowhere in their specs.
    container = job["spec"]["template"]["spec"]["containers"][0]
    references = {e["name"]: e.get("valueFrom") for e in container["env"] if "valueFrom" in e}
    assert references == {
        name: {"secretKeyRef": {"name": secret["metadata"]["name"], "key": name}}
        for name in ("MLGRID_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN")
    }
    assert token not in json.dumps(job)
    pod = _wait_for(lambda: created("pods"))
    assert token not in json.dumps(pod)

    assert submitted.wait() and submitted.get_status() == "FINISHED"
    # The pod logged with the token it got from the Secret …
    run = Client().get_run(submitted.run_id)
    assert run.data.metrics == {"doubled": 0.5}
    # … and the Secret is gone with the run, and the token no longer works.
    with pytest.raises(ApiError) as gone:
        store.get("secrets", "default", secret["metadata"]["name"])
    assert gone.value.code == 404
    time.sleep(CACHE_SECONDS + 0.2)
    tracking = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    request = trk.GetRunRequest(run_id=submitted.run_id)
    bearer = [(AUTHORIZATION_METADATA, f"Bearer {token}")]
    assert code_of(lambda: tracking.GetRun(request, metadata=bearer)) is (
        grpc.StatusCode.UNAUTHENTICATED
    )
