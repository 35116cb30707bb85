"""The Secret that holds a run's credential on Kubernetes, so the Job's spec does not.

With auth on, a run's code logs with a token of its submitter (services/common/auth/
run_tokens.py). Written into the Job's ``env`` it would be readable by whoever may read Jobs or
pods in the namespace; instead it goes into a Secret of the run's own (``<job name>-token``,
labelled with the run id) that the container's ``env`` references with ``secretKeyRef``.

Lifecycle: the Secret is created just before the Job (so the pod never waits for it), then
made a dependent of the Job (``ownerReferences``), so the cluster's garbage collector deletes it
with the Job whoever deletes the Job (the run's cancel, ``ttlSecondsAfterFinished``, a user).
The service also deletes it when the run ends, as the token is revoked then; a Job that could
not be created takes its Secret with it. The service needs ``create``, ``patch`` and
``delete`` on ``secrets`` in the Jobs' namespace, never ``get`` or ``list``.
"""

from __future__ import annotations

import base64
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .cluster import Cluster
from .template import MANAGED_BY_LABEL, RUN_ID_LABEL, secret_name

__all__ = ["create_secret", "delete_secret", "own_secret", "secret_body", "secret_name"]

_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


def secret_body(job_name: str, run_id: str, values: dict[str, str]) -> k8s.V1Secret:
    """The Secret holding ``values`` under their variable names (valid Secret keys)."""
    return k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        metadata=k8s.V1ObjectMeta(
            name=secret_name(job_name),
            labels={MANAGED_BY_LABEL: "mlgrid", RUN_ID_LABEL: run_id},
        ),
        data={k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    )


def create_secret(cluster: Cluster, namespace: str, body: k8s.V1Secret) -> None:
    """Creates it; raises ApiException (or a connection error) for the caller to report."""
    k8s.CoreV1Api(cluster.api).create_namespaced_secret(namespace, body, _request_timeout=30)


def own_secret(cluster: Cluster, namespace: str, name: str, job: Any) -> str | None:
    """Makes the Job (as the API server returned it) the Secret's owner; what went wrong, or
    None. Failing only costs the garbage collection: the service still deletes it at the end."""
    metadata = job.metadata
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": metadata.name,
        "uid": metadata.uid,
    }
    try:
        k8s.CoreV1Api(cluster.api).patch_namespaced_secret(
            name, namespace, {"metadata": {"ownerReferences": [owner]}}, _request_timeout=30
        )
    except _ERRORS as exc:
        return _describe(exc)
    return None


def delete_secret(cluster: Cluster, namespace: str, name: str) -> str | None:
    """Deletes it (gone already is fine); what went wrong, or None."""
    try:
        k8s.CoreV1Api(cluster.api).delete_namespaced_secret(name, namespace, _request_timeout=30)
    except ApiException as exc:
        if exc.status != 404:
            return _describe(exc)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return _describe(exc)
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return type(exc).__name__
