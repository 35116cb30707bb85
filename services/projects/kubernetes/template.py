"""The run's Job, made from the user's template (MLflow's rules, with clear errors).

Replaced, as MLflow documents: ``metadata.name`` (the project's name and the time), and in the
first container ``name``, ``image`` (by digest) and ``command``; ``MLFLOW_TRACKING_URI``,
``MLFLOW_RUN_ID`` and ``MLFLOW_EXPERIMENT_ID`` are added to its ``env``. Beyond MLflow, the
project's ``docker_env`` volumes and variables are carried over, labels name the run (so its
pods can be found, and its Job adopted after a service restart), and image pull secrets are
added. The run's credential (auth on) is not in the Job: its variables reference the run's
Secret (``secretKeyRef``, see run_secret.py). The template text is parsed afresh for every run; the file is never written.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from mlgrid.exceptions import InvalidParameterValue

__all__ = [
    "CODE_DIR",
    "MANAGED_BY_LABEL",
    "RUN_ID_LABEL",
    "JobRequest",
    "job_name",
    "parse_template",
    "render_job",
    "secret_name",
]

#: Where the project image holds the project (the working directory of the command).
CODE_DIR = "/mlflow/projects/code"
RUN_ID_LABEL = "mlgrid.org/run-id"
EXPERIMENT_ID_ANNOTATION = "mlgrid.org/experiment-id"
STORE_URI_ANNOTATION = "mlgrid.org/store-uri"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
#: A Job's name is copied into its pods' labels, so it must be a valid label value.
_MAX_NAME = 63
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class JobRequest:
    """What a run puts into its Job."""

    project_name: str
    run_id: str
    experiment_id: str
    #: The pushed project image, by digest (``repo@sha256:…``).
    image: str
    #: The entry point's command line (run by ``sh -c``, as MLproject commands are shell).
    command: str
    tracking_uri: str
    #: docker_env variables, already resolved to values.
    environment: dict[str, str] = field(default_factory=dict)
    #: docker_env volumes, ``host_path:container_path[:ro|rw]``.
    volumes: tuple[str, ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    #: Store the run lives in, when the client named one (the Job remembers it for adoption).
    store_uri: str | None = None
    #: The run's variables every backend hands its code (mlgrid's and MLflow's names); they
    #: take precedence over the three MLFLOW_* ones made from the fields above.
    variables: dict[str, str] = field(default_factory=dict)
    #: Variables whose values are in the run's Secret (the credential): referenced, not written.
    credentials: tuple[str, ...] = ()
    #: When the Job is made (its name's timestamp).
    now: datetime | None = None


def _fail(field_path: str, problem: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"kubernetes job template: {field_path} {problem}")


def _mapping(parent: dict[str, Any], key: str, field_path: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _fail(field_path, f"must be a mapping, got {type(value).__name__}")
    return value


def parse_template(text: str) -> dict[str, Any]:
    """The template as a Job mapping, with every field the backend replaces present."""
    try:
        job = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidParameterValue(f"kubernetes job template is not valid YAML{where}") from None
    if not isinstance(job, dict):
        raise InvalidParameterValue(
            "kubernetes job template must be a YAML mapping (a batch/v1 Job), "
            f"got {type(job).__name__}"
        )
    if job.get("apiVersion", "batch/v1") != "batch/v1":
        raise _fail("apiVersion", f"must be 'batch/v1', got {str(job['apiVersion'])[:60]!r}")
    if job.get("kind", "Job") != "Job":
        raise _fail("kind", f"must be 'Job', got {str(job['kind'])[:60]!r}")
    job.setdefault("metadata", {})
    _mapping(job, "metadata", "metadata")
    pod_spec = _mapping(
        _mapping(_mapping(job, "spec", "spec"), "template", "spec.template"),
        "spec",
        "spec.template.spec",
    )
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise _fail(
            "spec.template.spec.containers",
            "must be a list with at least one container (the first runs the project)",
        )
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            raise _fail(f"spec.template.spec.containers[{index}]", "must be a mapping")
    restart = pod_spec.get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        raise _fail(
            "spec.template.spec.restartPolicy",
            f"must be 'Never' or 'OnFailure' (a Job's pods may not restart Always), got {restart!r}",
        )
    env = containers[0].get("env")
    if env is not None and not isinstance(env, list):
        raise _fail("spec.template.spec.containers[0].env", "must be a list")
    return job


def _dns_label(text: str, limit: int) -> str:
    label = _NOT_DNS.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return label or "mlgrid-project"


def job_name(project_name: str, now: datetime) -> str:
    """``<project>-<UTC time to the microsecond>``, a valid Job name of at most 63 characters."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return f"{_dns_label(project_name, _MAX_NAME - len(stamp) - 1)}-{stamp}"


def secret_name(job_name: str) -> str:
    """The name of the Secret holding the credential of the Job ``job_name`` (at most 63
    characters, so this stays a valid object name)."""
    return f"{job_name}-token"


def _volumes(volumes: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """docker_env volumes as hostPath volumes and their mounts."""
    pod_volumes, mounts = [], []
    for index, spec in enumerate(volumes):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise InvalidParameterValue(
                f"docker_env.volumes[{index}] {spec[:200]!r} must be 'host_path:container_path' "
                "or 'host_path:container_path:ro|rw'"
            )
        host, target = parts[0], parts[1]
        if not host.startswith("/") or not target.startswith("/"):
            raise InvalidParameterValue(
                f"docker_env.volumes[{index}] {spec[:200]!r}: on kubernetes both paths must be "
                "absolute (the host path is a hostPath volume on the node running the pod)"
            )
        name = f"mlgrid-volume-{index}"
        pod_volumes.append({"name": name, "hostPath": {"path": host}})
        mounts.append({"name": name, "mountPath": target, "readOnly": parts[2:] == ["ro"]})
    return pod_volumes, mounts


def render_job(template: dict[str, Any], request: JobRequest) -> dict[str, Any]:
    """A new Job for one run; ``template`` is left as it was."""
    job = copy.deepcopy(template)
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    labels = {MANAGED_BY_LABEL: "mlgrid", RUN_ID_LABEL: request.run_id}
    metadata = job["metadata"]
    metadata["name"] = job_name(request.project_name, request.now or datetime.now(timezone.utc))
    metadata.pop("generateName", None)
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    annotations = {EXPERIMENT_ID_ANNOTATION: request.experiment_id}
    if request.store_uri:
        annotations[STORE_URI_ANNOTATION] = request.store_uri
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    pod_template = job["spec"]["template"]
    pod_metadata = pod_template.setdefault("metadata", {}) or {}
    pod_template["metadata"] = pod_metadata
    # The Job controller copies these to the pods, so the run's pods are found by label.
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **labels}
    pod_spec = pod_template["spec"]
    container = pod_spec["containers"][0]
    container["name"] = _dns_label(request.project_name, _MAX_NAME)
    container["image"] = request.image
    container["command"] = ["sh", "-c", request.command]
    container.pop("args", None)
    container.setdefault("workingDir", CODE_DIR)
    run_values = {
        "MLFLOW_TRACKING_URI": request.tracking_uri,
        "MLFLOW_RUN_ID": request.run_id,
        "MLFLOW_EXPERIMENT_ID": request.experiment_id,
        **request.variables,
    }
    credentials = [k for k in request.credentials if k not in run_values]
    replaced = set(run_values) | set(request.environment) | set(credentials)
    env = [e for e in container.get("env") or [] if e.get("name") not in replaced]
    env += [
        {"name": k, "value": v}
        for k, v in request.environment.items()
        if k not in run_values and k not in credentials
    ]
    env += [{"name": k, "value": v} for k, v in run_values.items()]
    secret = secret_name(metadata["name"])
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}} for k in credentials
    ]
    container["env"] = env
    pod_volumes, mounts = _volumes(request.volumes)
    if pod_volumes:
        pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *pod_volumes]
        container["volumeMounts"] = [*(container.get("volumeMounts") or []), *mounts]
    if request.image_pull_secrets:
        known = pod_spec.get("imagePullSecrets") or []
        names = {s.get("name") for s in known if isinstance(s, dict)}
        extra = [{"name": n} for n in request.image_pull_secrets if n not in names]
        pod_spec["imagePullSecrets"] = [*known, *extra]
    return job
