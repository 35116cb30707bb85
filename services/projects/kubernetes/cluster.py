"""An API client for the cluster a run names: a kubeconfig context, else the in-cluster account.

As MLflow documents: ``kube-context`` picks a context of the kubeconfig (``$KUBECONFIG``, else
``~/.kube/config``); without one the kubeconfig's current context is used; without a kubeconfig
the service assumes it runs in a pod and uses its service account (the Helm chart's case).
Every run gets an ApiClient of its own (no process-wide default configuration is touched), and
the kubeconfig is only read (``persist_config=False``: refreshed tokens are not written back).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes.config.config_exception import ConfigException

from mlgrid.exceptions import InvalidParameterValue

__all__ = ["SERVICE_ACCOUNT_DIR", "Cluster", "connect"]

#: Where Kubernetes mounts a pod's service account (token, CA bundle, namespace).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Cluster:
    """A connection to one cluster."""

    api: k8s.ApiClient
    #: The namespace Jobs go to unless the template or the backend config names one.
    namespace: str
    #: For messages: "kube context 'x'" or "the in-cluster service account".
    description: str
    #: The context it was made from (None: in-cluster); recorded to reconnect after a restart.
    context: str | None

    def close(self) -> None:
        self.api.close()


def _kubeconfig_path() -> str:
    return os.environ.get("KUBECONFIG") or "~/.kube/config"


def _contexts() -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The kubeconfig's contexts and its current one ([] and None without a kubeconfig)."""
    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=_kubeconfig_path())
    except (ConfigException, OSError, TypeError, ValueError):
        return [], None
    return list(contexts or []), current or None


def _from_kubeconfig(entry: dict[str, Any]) -> Cluster:
    name = str(entry["name"])
    try:
        api = kube_config.new_client_from_config(
            config_file=_kubeconfig_path(), context=name, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise InvalidParameterValue(
            f"backend config: kube context {name!r} cannot be used: {str(exc)[:300]}"
        ) from None
    namespace = (entry.get("context") or {}).get("namespace") or "default"
    return Cluster(api, str(namespace), f"kube context {name!r}", name)


def _in_cluster(service_account_dir: Path) -> Cluster:
    configuration = k8s.Configuration()
    loader = kube_config.incluster_config.InClusterConfigLoader(
        token_filename=str(service_account_dir / "token"),
        cert_filename=str(service_account_dir / "ca.crt"),
    )
    try:
        loader.load_and_set(configuration)
    except ConfigException as exc:
        raise InvalidParameterValue(
            "the kubernetes backend found no kubeconfig context (set 'kube-context' in the "
            "backend config, or KUBECONFIG on the projects service) and is not running in a "
            f"cluster's pod ({exc})"
        ) from None
    try:
        namespace = (service_account_dir / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return Cluster(k8s.ApiClient(configuration), namespace, "the in-cluster service account", None)


def connect(context: str | None, service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> Cluster:
    """An ApiClient for ``context`` (None: the current context, else in-cluster config)."""
    contexts, current = _contexts()
    if context:
        for entry in contexts:
            if entry.get("name") == context:
                return _from_kubeconfig(entry)
        known = ", ".join(sorted(str(e.get("name")) for e in contexts)) or "none"
        raise InvalidParameterValue(
            f"backend config: 'kube-context' {context[:100]!r} is not a context of the projects "
            f"service's kubeconfig (contexts: {known})"
        )
    if current is not None:
        return _from_kubeconfig(current)
    return _in_cluster(service_account_dir)
