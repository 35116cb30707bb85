"""The Job made from a user's template: MLflow's replaced fields, and clear errors."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
import yaml

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.projects.kubernetes.template import (
    CODE_DIR,
    RUN_ID_LABEL,
    JobRequest,
    job_name,
    parse_template,
    render_job,
)

TEMPLATE = """
apiVersion: batch/v1
kind: Job
metadata:
  name: "{replaced with MLflow Project name}"
  namespace: mlflow
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: "{replaced with MLflow Project name}"
        image: "{replaced with URI of Docker image created during Project execution}"
        command: ["{replaced with MLflow Project entry point command}"]
        env:
        - {name: MLFLOW_TRACKING_URI, value: "http://stale"}
        - {name: KEEP_ME, value: "1"}
        resources:
          limits: {memory: 512Mi}
      - name: sidecar
        image: busybox
      restartPolicy: Never
"""


def request(**overrides: object) -> JobRequest:
    values: dict[str, object] = {
        "project_name": "My Project_v2",
        "run_id": "0123456789abcdef0123456789abcdef",
        "experiment_id": "7",
        "image": "registry.example:5000/proj@sha256:" + "a" * 64,
        "command": "python train.py --alpha 0.5",
        "tracking_uri": "grpc://gateway:50051",
        "now": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
    }
    values.update(overrides)
    return JobRequest(**values)  # type: ignore[arg-type]


def test_the_fields_mlflow_documents_are_replaced_in_the_first_container_only() -> None:
    template = parse_template(TEMPLATE)
    job = render_job(template, request())
    assert job["metadata"]["name"] == "my-project-v2-20260102-030405-678901"
    assert job["metadata"]["namespace"] == "mlflow"
    first, second = job["spec"]["template"]["spec"]["containers"]
    assert first["name"] == "my-project-v2"
    assert first["image"].endswith("@sha256:" + "a" * 64)
    assert first["command"] == ["sh", "-c", "python train.py --alpha 0.5"]
    assert first["workingDir"] == CODE_DIR
    assert first["resources"] == {"limits": {"memory": "512Mi"}}
    assert second == {"name": "sidecar", "image": "busybox"}
    env = {e["name"]: e["value"] for e in first["env"]}
    assert env == {
        "KEEP_ME": "1",
        "MLFLOW_TRACKING_URI": "grpc://gateway:50051",
        "MLFLOW_RUN_ID": "0123456789abcdef0123456789abcdef",
        "MLFLOW_EXPERIMENT_ID": "7",
    }
    # The run's pods are found by label: the Job controller copies the template's labels.
    assert job["spec"]["template"]["metadata"]["labels"][RUN_ID_LABEL] == request().run_id


def test_the_template_is_left_unchanged() -> None:
    template = parse_template(TEMPLATE)
    before = copy.deepcopy(template)
    render_job(template, request())
    render_job(template, request(run_id="f" * 32))
    assert template == before


def test_docker_env_variables_and_volumes_are_carried_over() -> None:
    job = render_job(
        parse_template(TEMPLATE),
        request(
            environment={"NEW_ENV_VAR": "new", "MLFLOW_RUN_ID": "not this one"},
            volumes=("/data/in:/mnt/in:ro", "/data/out:/mnt/out"),
        ),
    )
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["NEW_ENV_VAR"] == "new"
    assert env["MLFLOW_RUN_ID"] == request().run_id
    assert pod["volumes"] == [
        {"name": "mlgrid-volume-0", "hostPath": {"path": "/data/in"}},
        {"name": "mlgrid-volume-1", "hostPath": {"path": "/data/out"}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "mlgrid-volume-0", "mountPath": "/mnt/in", "readOnly": True},
        {"name": "mlgrid-volume-1", "mountPath": "/mnt/out", "readOnly": False},
    ]


def test_image_pull_secrets_are_added_once() -> None:
    text = TEMPLATE.replace(
        "restartPolicy: Never", "restartPolicy: Never\n      imagePullSecrets: [{name: regcred}]"
    )
    job = render_job(parse_template(text), request(image_pull_secrets=("regcred", "other")))
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "regcred"},
        {"name": "other"},
    ]


def test_job_names_are_valid_kubernetes_names_of_at_most_63_characters() -> None:
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    name = job_name("A" * 100 + " very/long_project", now)
    assert len(name) <= 63
    assert name.endswith("-20260102-000000-000000")
    assert name == name.lower() and not name.startswith("-")
    assert job_name("___", now).startswith("mlgrid-project-")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "apiVersion: batch/v1\nkind: Job\nspec: {template: {spec: {restartPolicy: Never}}}",
            "spec.template.spec.containers",
        ),
        (
            "kind: Job\nspec: {template: {spec: {containers: [], restartPolicy: Never}}}",
            "spec.template.spec.containers",
        ),
        ("kind: Job\nmetadata: {}\n", "spec"),
        ("kind: Job\nspec: {template: {}}", "spec.template.spec"),
        (
            "kind: Job\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}",
            "spec.template.spec.restartPolicy",
        ),
        ("kind: Deployment\n", "kind"),
        ("apiVersion: batch/v2\n", "apiVersion"),
        (
            "kind: Job\nspec: {template: {spec: {containers: [oops], restartPolicy: Never}}}",
            "spec.template.spec.containers[0]",
        ),
    ],
)
def test_a_template_missing_a_field_is_refused_naming_the_field(text: str, named: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_template(text)
    assert named in caught.value.message


def test_a_template_that_is_not_a_yaml_mapping_is_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="YAML mapping"):
        parse_template("- a list\n")
    with pytest.raises(InvalidParameterValue, match=r"not valid YAML \(line 2\)"):
        parse_template("kind: Job\n  bad: [\n")


@pytest.mark.parametrize("volume", ["relative:/mnt", "/host", "/a:/b:rx", "named-volume:/data"])
def test_volumes_a_pod_cannot_mount_are_refused_naming_the_field(volume: str) -> None:
    with pytest.raises(InvalidParameterValue, match=r"docker_env.volumes\[0\]"):
        render_job(parse_template(TEMPLATE), request(volumes=(volume,)))


def test_a_rendered_job_is_a_valid_kubernetes_object() -> None:
    from kubernetes import client

    job = render_job(parse_template(TEMPLATE), request(volumes=("/a:/b",)))
    model = client.V1Job.from_dict(job)
    assert model.spec.template.spec.containers[0].volume_mounts[0].mount_path == "/b"
    assert yaml.safe_load(yaml.safe_dump(job)) == job


def test_the_runs_variables_of_every_backend_win_over_the_three_mlflow_ones() -> None:
    variables = {
        "MLFLOW_TRACKING_URI": "mlgrid://gateway:50051",
        "MLGRID_TRACKING_URI": "grpc://gateway:50051",
        "PYTHONUNBUFFERED": "1",
    }
    job = render_job(parse_template(TEMPLATE), request(variables=variables))
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "mlgrid://gateway:50051"
    assert env["MLGRID_TRACKING_URI"] == "grpc://gateway:50051"
    assert env["MLFLOW_RUN_ID"] == request().run_id and env["PYTHONUNBUFFERED"] == "1"


def test_the_runs_credential_is_referenced_from_its_secret_never_written() -> None:
    template = parse_template(
        TEMPLATE.replace(
            '- {name: KEEP_ME, value: "1"}',
            '- {name: KEEP_ME, value: "1"}\n        - {name: MLGRID_TRACKING_TOKEN, value: "stale"}',
        )
    )
    job = render_job(
        template,
        request(
            variables={"MLGRID_RUN_ID": "r"},
            credentials=("MLGRID_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN"),
        ),
    )
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    secret = f"{job['metadata']['name']}-token"
    by_name = {e["name"]: e for e in env}
    for name in ("MLGRID_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN"):
        assert by_name[name] == {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": name}},
        }
    assert [e["name"] for e in env].count("MLGRID_TRACKING_TOKEN") == 1  # the template's is gone
    assert "stale" not in str(env)
