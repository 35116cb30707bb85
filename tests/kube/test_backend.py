"""``-b kubernetes`` end to end: the project image built and pushed to a real registry, a Job
on the local API server whose pod runs it as a real container, logging into mlgrid.

What a user sees is asserted: the CLI's output and exit status, the tracking run (status,
params, metrics, the kept log artifact), the Job the cluster got, and for bad input the error
naming the field, the run FAILED and nothing left in the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlgrid.client import Client
from mlgrid.exceptions import MlgridException
from mlgrid_services.projects.kubernetes.submitted import LOG_ARTIFACT

from .conftest import Cluster, project

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: "{replaced with MLflow Project name}"
  namespace: default
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: "{replaced with MLflow Project name}"
        image: "{replaced with URI of Docker image created during Project execution}"
        command: ["{replaced with MLflow Project entry point command}"]
        env: [{name: FROM_TEMPLATE, value: "t"}]
      restartPolicy: Never
"""


def backend_config(tmp_path: Path, registry: str, template: str = TEMPLATE) -> Path:
    (tmp_path / "job.yaml").write_text(template)
    config = tmp_path / "kubernetes_config.json"
    config.write_text(
        json.dumps(
            {
                "kube-context": "mlgrid-test",
                "repository-uri": f"{registry}/kube-demo",
                "kube-job-template-path": str(tmp_path / "job.yaml"),
            }
        )
    )
    return config


def cli(tracking_uri: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGRID_TRACKING_URI": tracking_uri}
    return subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "run", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def use_tracking_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Points the SDK in this process at ``uri`` for one test: the variable, and the URI an
    earlier test in the same worker may have set with ``set_tracking_uri`` (which wins over it)."""
    import mlgrid.tracking_uri

    monkeypatch.setattr(mlgrid.tracking_uri, "_tracking_uri", None)
    monkeypatch.setenv("MLGRID_TRACKING_URI", uri)


def runs_of(client: Client, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return client.search_runs([found.experiment_id])


def test_mlgrid_run_on_kubernetes_runs_the_project_in_a_job_that_logs_into_mlgrid(
    grpc_stack, cluster: Cluster, registry: str, python_image: str, tmp_path: Path
) -> None:
    proj = project(tmp_path / "proj", python_image)
    config = backend_config(tmp_path, registry)
    template_before = (tmp_path / "job.yaml").read_bytes()
    done = cli(
        grpc_stack.tracking_uri,
        str(proj),
        "-b",
        "kubernetes",
        "--backend-config",
        str(config),
        "-P",
        "alpha=0.7",
        "--experiment-name",
        "kube-e2e",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "greeting: hello t" in done.stdout
    client = Client(grpc_stack.tracking_uri)
    (run,) = runs_of(client, "kube-e2e")
    assert f"logging into {run.info.run_id}" in done.stdout  # the run the service created
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.7", "sleep": "0"}
    assert run.data.metrics == {"doubled": 1.4}
    assert run.data.tags["mlflow.project.backend"] == "kubernetes"
    kept = client.download_artifacts(run.info.run_id, LOG_ARTIFACT, str(tmp_path / "dl"))
    assert "greeting: hello t" in Path(kept).read_text()
    # The Job: the image by digest from the configured repository, the command, the env.
    (job,) = [e[3] for e in cluster.api.store.events if e[1] == "jobs" and e[2] == "ADDED"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith(f"{registry}/kube-demo@sha256:")
    assert container["command"] == ["sh", "-c", "python train.py --alpha 0.7 --sleep 0"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_RUN_ID"] == run.info.run_id
    assert env["MLFLOW_EXPERIMENT_ID"] == run.info.experiment_id
    # The SDK's name for the gateway, and the mlflow client's (mlgrid's MLflow plugin).
    assert env["MLGRID_TRACKING_URI"] == grpc_stack.tracking_uri
    assert env["MLFLOW_TRACKING_URI"] == grpc_stack.tracking_uri.replace("grpc://", "mlgrid://")
    assert job["metadata"]["name"].startswith("kube-demo-")
    assert (tmp_path / "job.yaml").read_bytes() == template_before


def test_a_template_without_a_container_is_refused_naming_the_field_and_the_run_failed(
    grpc_stack, cluster: Cluster, registry: str, python_image: str, tmp_path: Path
) -> None:
    proj = project(tmp_path / "proj", python_image)
    broken = TEMPLATE.split("      containers:")[0] + "      restartPolicy: Never\n"
    config = backend_config(tmp_path, registry, broken)
    done = cli(
        grpc_stack.tracking_uri,
        str(proj),
        "-b",
        "kubernetes",
        "--backend-config",
        str(config),
        "--experiment-name",
        "kube-no-container",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "spec.template.spec.containers" in done.stderr
    (run,) = runs_of(Client(grpc_stack.tracking_uri), "kube-no-container")
    assert run.info.status == "FAILED"
    assert cluster.api.store.list("jobs", None, "", "")[0] == []


def test_an_unreachable_api_server_is_a_clear_error_and_the_run_failed(
    grpc_stack,
    cluster: Cluster,
    registry: str,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = project(tmp_path / "proj", python_image)
    config = backend_config(tmp_path, registry)
    unreachable = tmp_path / "unreachable-kubeconfig"
    unreachable.write_text(
        cluster.kubeconfig.read_text().replace(cluster.api.url, "http://127.0.0.1:9")
    )
    monkeypatch.setenv("KUBECONFIG", str(unreachable))
    import mlgrid.projects

    use_tracking_uri(grpc_stack.tracking_uri, monkeypatch)
    with pytest.raises(MlgridException) as caught:
        mlgrid.projects.run(
            str(proj),
            backend="kubernetes",
            backend_config=str(config),
            experiment_name="kube-unreachable",
        )
    assert "cannot reach the Kubernetes API server of kube context 'mlgrid-test'" in str(
        caught.value
    )
    (run,) = runs_of(Client(grpc_stack.tracking_uri), "kube-unreachable")
    assert run.info.status == "FAILED"


def test_an_unreachable_registry_fails_the_run_naming_the_repository_and_creates_no_job(
    grpc_stack,
    cluster: Cluster,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlgrid.projects

    proj = project(tmp_path / "proj", python_image)
    config = backend_config(tmp_path, "127.0.0.1:9")
    use_tracking_uri(grpc_stack.tracking_uri, monkeypatch)
    submitted = mlgrid.projects.run(
        str(proj),
        backend="kubernetes",
        backend_config=str(config),
        experiment_name="kube-no-registry",
        synchronous=False,
    )
    assert submitted.wait() is False
    assert "'repository-uri' '127.0.0.1:9/kube-demo'" in submitted.message
    client = Client(grpc_stack.tracking_uri)
    assert client.get_run(submitted.run_id).info.status == "FAILED"
    assert cluster.api.store.list("jobs", None, "", "")[0] == []


def test_cancel_through_the_service_deletes_the_job_and_kills_the_run(
    grpc_stack,
    cluster: Cluster,
    registry: str,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlgrid.projects

    proj = project(tmp_path / "proj", python_image)
    config = backend_config(tmp_path, registry)
    use_tracking_uri(grpc_stack.tracking_uri, monkeypatch)
    submitted = mlgrid.projects.run(
        str(proj),
        backend="kubernetes",
        backend_config=str(config),
        parameters={"sleep": "300"},
        synchronous=False,
    )
    deadline = time.monotonic() + 300
    while submitted.get_status() != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    submitted.cancel()
    assert submitted.get_status() == "KILLED"
    assert Client(grpc_stack.tracking_uri).get_run(submitted.run_id).info.status == "KILLED"
    assert cluster.api.store.list("jobs", None, "", "")[0] == []
    assert cluster.api.store.list("pods", None, "", "")[0] == []


def test_the_requested_run_id_is_the_run_the_job_logs_into(
    grpc_stack,
    cluster: Cluster,
    registry: str,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mlflow/mlflow#4095: MLflow's kubernetes backend ignored ``run_id``."""
    import mlgrid.projects

    client = Client(grpc_stack.tracking_uri)
    mine = client.create_run(client.create_experiment("kube-requested-run"))
    use_tracking_uri(grpc_stack.tracking_uri, monkeypatch)
    submitted = mlgrid.projects.run(
        str(project(tmp_path / "proj", python_image)),
        backend="kubernetes",
        backend_config=str(backend_config(tmp_path, registry)),
        parameters={"alpha": "2"},
        run_id=mine.info.run_id,
        synchronous=False,
    )
    assert submitted.run_id == mine.info.run_id
    assert submitted.wait() is True
    run = client.get_run(mine.info.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"doubled": 4.0}
    (job,) = [e[3] for e in cluster.api.store.events if e[1] == "jobs" and e[2] == "ADDED"]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_RUN_ID"] == mine.info.run_id


def _private_registry_run(
    grpc_stack,
    cluster: Cluster,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pull_secrets: list[str],
) -> Any:
    """A run pushed to the engine's registry that wants credentials (with the Docker config's),
    whose Job names ``pull_secrets``; the cluster holds Secret ``regcred`` with the registry's
    credentials. The template pulls Always, so a copy of the image the engine already has (it
    built it) does not stand in for the pull."""
    import base64

    from kubernetes import client as k8s
    from kubernetes import config as kube_config

    import mlgrid.projects

    engine = cluster.engine
    private = engine.auth_registry
    monkeypatch.setenv("DOCKER_CONFIG", str(engine.docker_config(tmp_path / "docker")))
    auth = base64.b64encode(f"{engine.registry_user}:{engine.registry_password}".encode())
    dockerconfig = json.dumps({"auths": {private: {"auth": auth.decode()}}}).encode()
    api = kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    k8s.CoreV1Api(api).create_namespaced_secret(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(dockerconfig).decode()},
        },
    )
    template = TEMPLATE.replace(
        '        env: [{name: FROM_TEMPLATE, value: "t"}]',
        '        env: [{name: FROM_TEMPLATE, value: "t"}]\n        imagePullPolicy: Always',
    )
    (tmp_path / "job.yaml").write_text(template)
    use_tracking_uri(grpc_stack.tracking_uri, monkeypatch)
    config: dict[str, Any] = {
        "repository-uri": f"{private}/kube-private",
        "kube-job-template-path": str(tmp_path / "job.yaml"),
    }
    if pull_secrets:
        config["image-pull-secrets"] = pull_secrets
    return mlgrid.projects.run(
        str(project(tmp_path / "proj", python_image)),
        backend="kubernetes",
        backend_config=config,
        synchronous=False,
    )


def test_a_private_registry_push_with_docker_config_and_pull_with_a_pull_secret(
    grpc_stack,
    cluster: Cluster,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mlflow/mlflow#1672: the push to a registry that wants credentials uses the Docker
    config's; the Job's pods get the pull Secret the backend config names, and pull with it."""
    submitted = _private_registry_run(
        grpc_stack, cluster, python_image, tmp_path, monkeypatch, ["regcred"]
    )
    assert submitted.wait() is True, submitted.message
    (job,) = [e[3] for e in cluster.api.store.events if e[1] == "jobs" and e[2] == "ADDED"]
    pod_spec = job["spec"]["template"]["spec"]
    private = cluster.engine.auth_registry
    assert pod_spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod_spec["containers"][0]["image"].startswith(f"{private}/kube-private@sha256:")
    client = Client(grpc_stack.tracking_uri)
    assert client.get_run(submitted.run_id).data.metrics == {"doubled": 1.0}


def test_without_the_pull_secret_the_private_image_is_not_pulled_and_the_run_fails(
    grpc_stack,
    cluster: Cluster,
    python_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same push and Job with no pull Secret: the registry refuses the pull (the engine's
    copy of the image is not used, and the service's Docker config is not lent to the pods)."""
    submitted = _private_registry_run(grpc_stack, cluster, python_image, tmp_path, monkeypatch, [])
    assert submitted.wait() is False
    run = Client(grpc_stack.tracking_uri).get_run(submitted.run_id)
    assert run.info.status == "FAILED"
    assert "ImagePullBackOff" in submitted.message, submitted.message
    (job,) = [e[3] for e in cluster.api.store.events if e[1] == "jobs" and e[2] == "ADDED"]
    assert "imagePullSecrets" not in job["spec"]["template"]["spec"]
    pulls = [
        e[3]["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        for e in cluster.api.store.events
        if e[1] == "pods" and "ErrImagePull" in json.dumps(e[3].get("status", {}))
    ]
    assert pulls and all(cluster.engine.auth_registry in m for m in pulls)
    assert any("unauthorized" in m.lower() or "authentication" in m.lower() for m in pulls), pulls
    assert cluster.api.store.list("jobs", None, "", "")[0] == []
    assert cluster.api.store.list("pods", None, "", "")[0] == []
